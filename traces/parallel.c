/* parallel.c - whole-dataset read with parallel decompression.
 *
 * The serial HDF5 library runs its filters on the calling thread, so a
 * plain H5Dread inflates one chunk at a time.  Here the calling thread only
 * looks up where each raw (still compressed) chunk lies in the file,
 * holding the HDF5 lock, and hands that to worker threads that read the
 * bytes themselves (pread on their own descriptor of the file), undo the
 * filter pipeline (zlib inflate, then unshuffle) and place the chunk in the
 * output buffer.  Where the chunk's file address is not available (HDF5
 * before 1.10.5, a user block, an unallocated chunk) the calling thread
 * fetches the raw chunk with H5Dread_chunk instead: it did so for every
 * chunk up to the fourth session, and the workers of a read waited in turn
 * for their first chunk (decoding in the replay's reads took 1.7x the time
 * of one whole-dataset read on 16 cores, docs/perf/sim.md).  Only the filters HDF5 itself applies for shuffle and
 * deflate are decoded here; anything else falls back to H5Dread.
 *
 * Filter formats (from the HDF5 specification, H5Zdeflate.c/H5Zshuffle.c
 * behaviour, not their code): deflate stores a zlib stream (RFC 1950) of the
 * whole chunk; shuffle of n elements of s bytes stores byte j of element i
 * at j*n + i, and the trailing (chunk_bytes mod s) bytes unchanged.  Bit i of
 * a chunk's filter mask set means filter i of the pipeline was skipped for
 * that chunk (optional filters that did not help). */
#include "trace_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "checks.h"
#include "adler32.h"
#include "h5util.h"
#include "tmpfile_guard.h"

#define MAX_FILTERS 4
#define MAX_THREADS 256

/* ---- buffers kept between reads ------------------------------------------
 * A read allocated its raw chunk slots and decode scratch afresh and freed
 * them at the end, so each read of 32 MiB of logits (the replay's unit)
 * faulted in about as many fresh pages as it decoded bytes: 57K page
 * faults per pass over a 483 MB trace, in the producer's (serial) part
 * too.  The trace keeps them instead; at most BUFS_KEEP, each at least a
 * chunk, so about (3 x threads + 2) chunks while the trace is open. */
#define BUFS_KEEP (3 * MAX_THREADS + 2)

struct eplb_trace_bufs {
    pthread_mutex_t mu;
    int n;
    unsigned char *p[BUFS_KEEP];
    size_t cap[BUFS_KEEP];
};

eplb_trace_bufs_t *eplb_trace_bufs_new(void)
{
    eplb_trace_bufs_t *b = calloc(1, sizeof *b);
    if (b)
        pthread_mutex_init(&b->mu, NULL);
    return b;
}

void eplb_trace_bufs_free(eplb_trace_bufs_t *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->n; i++)
        free(b->p[i]);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* A buffer of at least `need` bytes (*cap: its size), kept or new; NULL
 * when out of memory. */
static unsigned char *buf_take(eplb_trace_bufs_t *b, size_t need, size_t *cap)
{
    if (b) {
        pthread_mutex_lock(&b->mu);
        for (int i = 0; i < b->n; i++)
            if (b->cap[i] >= need) {
                unsigned char *p = b->p[i];
                *cap = b->cap[i];
                b->n--;
                b->p[i] = b->p[b->n];
                b->cap[i] = b->cap[b->n];
                pthread_mutex_unlock(&b->mu);
                return p;
            }
        pthread_mutex_unlock(&b->mu);
    }
    *cap = need;
    return malloc(need);
}

/* Keep p (cap bytes) for the next read, or free it. */
static void buf_give(eplb_trace_bufs_t *b, unsigned char *p, size_t cap)
{
    if (!p)
        return;
    if (b) {
        pthread_mutex_lock(&b->mu);
        if (b->n < BUFS_KEEP) {
            b->p[b->n] = p;
            b->cap[b->n++] = cap;
            p = NULL;
        }
        pthread_mutex_unlock(&b->mu);
    }
    free(p);
}

typedef struct {
    unsigned char *data;
    size_t cap, len;
    hsize_t off[3];
    uint32_t mask;
    int64_t at; /* file offset of the raw chunk for the worker to read, or
                   -1: data holds it already */
} slot_t;

typedef struct {
    /* plan */
    const char *path, *name;
    eplb_trace_bufs_t *bufs;   /* the trace's kept buffers (may be NULL) */
    int rank;                  /* the dataset's rank (1..3) */
    int fd;                    /* the file, for the workers' reads (-1: none) */
    hsize_t dims[3], cdims[3]; /* padded to rank 3 with leading 1s */
    size_t esize, chunk_bytes;
    int nfilt, filt[MAX_FILTERS];
    int contiguous;            /* chunk spans all trailing dims */
    unsigned char *out;        /* rows [r0, r1) of the dataset */
    hsize_t r0, r1;
    /* NaN/Inf check of what the workers place (logits): a worker scans
     * its chunk's rows while they are in its cache, where one thread
     * scanning the whole range afterwards took longer than the parallel
     * decode on 16 cores.  `unchecked` is set where some rows were not
     * scanned (rows placed piecewise, unallocated chunks) and
     * `nonfinite` where a scan found one; either way the caller scans
     * the range again to name the first bad value. */
    int check;
    eplb_dtype_t check_dt;
    atomic_int unchecked, nonfinite;
    /* EPLB_ZLIB_CHECK=1 (timing): inflate in zlib mode, zlib checking the
     * header and the Adler-32 (the reader before the sixth session) */
    int zlib_check;
    /* eplb_trace_read_logits_each: called for the rows of each chunk placed
     * whole; `delivered` counts those rows */
    eplb_trace_rows_fn on_rows;
    void *on_rows_ctx;
    atomic_llong delivered;
    /* queue */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_free;
    slot_t *slots;
    int nslots;
    int *ready, rhead, rcount;
    int *freel, nfree;
    int done;
    eplb_status_t st;
    char msg[512];
} par_t;

/* ---- plan --------------------------------------------------------------- */

/* Fill the plan of d; 1 if the parallel path applies, 0 if not, negative
 * if HDF5 failed.  Caller holds the HDF5 lock. */
static int plan_init(par_t *p, hid_t d, hid_t mtype)
{
    int ok = 0;
    hid_t dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d), ft = H5Dget_type(d);
    if (dcpl < 0 || sp < 0 || ft < 0) {
        ok = -1;
        goto out;
    }
    if (H5Pget_layout(dcpl) != H5D_CHUNKED)
        goto out;
    hsize_t dims[3], cd[3];
    int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    if (rank < 1 || rank > 3 || H5Pget_chunk(dcpl, 3, cd) != rank)
        goto out;
    p->rank = rank;
    for (int i = 0; i < 3; i++) {
        int j = i - (3 - rank);
        p->dims[i] = j >= 0 ? dims[j] : 1;
        p->cdims[i] = j >= 0 ? cd[j] : 1;
    }
    if (H5Tequal(ft, mtype) <= 0)
        goto out;
    p->esize = H5Tget_size(ft);
    p->chunk_bytes = p->esize * p->cdims[0] * p->cdims[1] * p->cdims[2];
    p->contiguous = p->cdims[1] == p->dims[1] && p->cdims[2] == p->dims[2];
    int nf = H5Pget_nfilters(dcpl);
    if (nf < 0 || nf > MAX_FILTERS)
        goto out;
    p->nfilt = nf;
    int seen = 0; /* bit 0 deflate, bit 1 shuffle */
    for (int i = 0; i < nf; i++) {
        unsigned flags, cdv[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cdv, 0, NULL, NULL);
        if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE)
            goto out;
        /* each at most once, shuffle before deflate: the decode below
         * unshuffles whole chunks and inflates to a whole chunk (a legal
         * deflate-then-shuffle pipeline was refused as "shuffled chunk has
         * the wrong size"); other pipelines go through H5Dread */
        const int bit = id == H5Z_FILTER_DEFLATE ? 1 : 2;
        if ((seen & bit) || (bit == 2 && (seen & 1)))
            goto out;
        seen |= bit;
        /* shuffle's element size is cd_values[0], set at creation */
        if (id == H5Z_FILTER_SHUFFLE && ncd >= 1 && cdv[0] != p->esize)
            goto out;
        p->filt[i] = (int)id;
    }
    ok = 1;
out:
    eplb_h5_close(&dcpl);
    eplb_h5_close(&sp);
    eplb_h5_close(&ft);
    if (ok <= 0)
        H5Eclear2(H5E_DEFAULT);
    return ok;
}

int eplb_trace_parallel_supported(const eplb_trace_t *tr)
{
    hid_t mt;
    const char *name;
    hid_t d = eplb_trace_bulk_dataset(tr, &mt, &name);
    if (d < 0)
        return 0;
    par_t p;
    memset(&p, 0, sizeof p);
    eplb_h5_lock();
    int ok = plan_init(&p, d, mt);
    eplb_h5_unlock();
    return ok == 1;
}

/* ---- decoding ----------------------------------------------------------- */

/* Unshuffle nvalid elements of s bytes from byte planes of stride n that
 * start at `in` (pass in + i0 to start at element i0 of the chunk). */
static void unshuffle(unsigned char *restrict dst, const unsigned char *restrict in, size_t n,
                      size_t s, size_t nvalid)
{
    size_t i = 0;
#if defined(__SSE2__)
    if (s == 4) {
        const unsigned char *p0 = in, *p1 = in + n, *p2 = in + 2 * n, *p3 = in + 3 * n;
        for (; i + 16 <= nvalid; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(p0 + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(p1 + i));
            __m128i c = _mm_loadu_si128((const __m128i *)(p2 + i));
            __m128i d = _mm_loadu_si128((const __m128i *)(p3 + i));
            __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
            __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
            unsigned char *o = dst + 4 * i;
            _mm_storeu_si128((__m128i *)(o + 0), _mm_unpacklo_epi16(ab_lo, cd_lo));
            _mm_storeu_si128((__m128i *)(o + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
            _mm_storeu_si128((__m128i *)(o + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
            _mm_storeu_si128((__m128i *)(o + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
        }
    } else if (s == 2) {
        const unsigned char *p0 = in, *p1 = in + n;
        for (; i + 16 <= nvalid; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(p0 + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(p1 + i));
            unsigned char *o = dst + 2 * i;
            _mm_storeu_si128((__m128i *)(o + 0), _mm_unpacklo_epi8(a, b));
            _mm_storeu_si128((__m128i *)(o + 16), _mm_unpackhi_epi8(a, b));
        }
    }
#endif
    for (; i < nvalid; i++)
        for (size_t j = 0; j < s; j++)
            dst[i * s + j] = in[j * n + i];
}

/* Rows [*lo, *hi) of the chunk at row off0 that are wanted (chunk-relative). */
static void chunk_rows(const par_t *p, hsize_t off0, hsize_t *lo, hsize_t *hi)
{
    hsize_t end = off0 + p->cdims[0];
    if (end > p->r1)
        end = p->r1;
    *lo = (p->r0 > off0 ? p->r0 : off0) - off0;
    *hi = end - off0;
}

/* Copy the wanted part of a decoded chunk (layout cdims) into the output. */
static void place(const par_t *p, const unsigned char *chunk, const hsize_t *off)
{
    hsize_t v[3], lo;
    for (int i = 1; i < 3; i++)
        v[i] = p->dims[i] - off[i] < p->cdims[i] ? p->dims[i] - off[i] : p->cdims[i];
    chunk_rows(p, off[0], &lo, &v[0]);
    size_t es = p->esize;
    for (hsize_t a = lo; a < v[0]; a++)
        for (hsize_t b = 0; b < v[1]; b++) {
            size_t o = (((off[0] + a - p->r0) * p->dims[1] + off[1] + b) * p->dims[2] + off[2]) *
                       es;
            size_t c = ((a * p->cdims[1] + b) * p->cdims[2]) * es;
            memcpy(p->out + o, chunk + c, v[2] * es);
        }
}

static void fail(par_t *p, eplb_status_t st, const hsize_t *off, const char *what)
{
    pthread_mutex_lock(&p->mu);
    if (p->st == EPLB_OK) {
        p->st = st;
        snprintf(p->msg, sizeof p->msg, "%s: %s: chunk at [%llu, %llu, %llu]: %s", p->path,
                 p->name, (unsigned long long)off[0], (unsigned long long)off[1],
                 (unsigned long long)off[2],
                 what && *what ? what : "cannot read (HDF5 gave no reason)");
    }
    pthread_cond_broadcast(&p->cv_work);
    pthread_cond_broadcast(&p->cv_free);
    pthread_mutex_unlock(&p->mu);
}

/* The NaN/Inf check of nvalid values just placed at `final` (NULL: placed
 * piecewise, left to the caller). */
static void check_placed(par_t *p, const unsigned char *final, size_t nvalid)
{
    if (!p->check)
        return;
    if (!final)
        atomic_store(&p->unchecked, 1);
    else if (eplb_trace_first_nonfinite(final, nvalid, p->check_dt) < nvalid)
        atomic_store(&p->nonfinite, 1);
}

/* Rows [lo, hi) of the chunk at row off0 are in the output, whole */
static void rows_placed(par_t *p, hsize_t off0, hsize_t lo, hsize_t hi)
{
    if (!p->on_rows || hi <= lo)
        return;
    p->on_rows(p->on_rows_ctx, (int64_t)(off0 + lo), (int64_t)(off0 + hi));
    atomic_fetch_add(&p->delivered, (long long)(hi - lo));
}

/* Decode one raw chunk.  *a, *b: scratch buffers of chunk_bytes, allocated
 * on first use (the usual chunk, deflate then unshuffle straight into the
 * output, needs only one: fewer fresh pages to fault in). */
static int decode(par_t *p, z_stream *zs, const slot_t *s, unsigned char **pa,
                  unsigned char **pb)
{
    const unsigned char *cur = s->data;
    size_t len = s->len;
    /* Where the fully decoded chunk lands: straight in the output when the
     * chunk covers whole rows, else in scratch then `place`.  Elements
     * [i0, i0 + nvalid) of the chunk are the wanted rows. */
    hsize_t lo, hi;
    chunk_rows(p, s->off[0], &lo, &hi);
    size_t row_elems = (size_t)(p->cdims[1] * p->cdims[2]);
    unsigned char *final =
        p->contiguous ? p->out + (s->off[0] + lo - p->r0) * row_elems * p->esize : NULL;
    size_t i0 = p->contiguous ? (size_t)lo * row_elems : 0;
    size_t nvalid = p->contiguous ? (size_t)(hi - lo) * row_elems : p->chunk_bytes / p->esize;
    int last = -1; /* the last filter to undo is the first one applied */
    for (int i = 0; i < p->nfilt && last < 0; i++)
        if (!(s->mask & (1u << i)))
            last = i;
    for (int i = p->nfilt - 1; i >= 0; i--) {
        if (s->mask & (1u << i))
            continue;
        unsigned char **slot = cur == *pa ? pb : pa;
        size_t cap;
        if (!*slot && !(*slot = buf_take(p->bufs, p->chunk_bytes, &cap))) {
            fail(p, EPLB_ERR_NOMEM, s->off, "out of memory for a decode buffer");
            return -1;
        }
        unsigned char *dst = *slot;
        if (p->filt[i] == H5Z_FILTER_DEFLATE) {
            /* a zlib stream (RFC 1950): its 2-byte header checked here,
             * the deflate data inflated raw, its Adler-32 trailer checked
             * by eplb_adler32 (zlib's check, a scalar loop, was ~5% of a
             * CPU replay: docs/perf/io.md) */
            if (inflateReset(zs) != Z_OK) {
                fail(p, EPLB_ERR_INTERNAL, s->off, "zlib inflateReset failed");
                return -1;
            }
            const int raw = !p->zlib_check; /* EPLB_ZLIB_CHECK: zlib checks */
            const char *bad = NULL;
            if (raw && (len < 6 || (cur[0] & 0x0f) != Z_DEFLATED || (cur[0] >> 4) > 7 ||
                        (cur[1] & 0x20) || ((unsigned)cur[0] << 8 | cur[1]) % 31 != 0))
                bad = "incorrect header check";
            if (!bad) {
                zs->next_in = (Bytef *)cur + (raw ? 2 : 0);
                zs->avail_in = (uInt)(len - (raw ? 2 : 0));
                zs->next_out = dst;
                zs->avail_out = (uInt)p->chunk_bytes;
                const int zr = inflate(zs, Z_FINISH);
                if (zr != Z_STREAM_END)
                    bad = zs->msg ? zs->msg : "error";
                else if (zs->total_out != p->chunk_bytes || (raw && zs->avail_in < 4))
                    bad = "short";
                else if (raw && eplb_adler32(1, dst, p->chunk_bytes) !=
                                    ((uint32_t)zs->next_in[0] << 24 |
                                     (uint32_t)zs->next_in[1] << 16 |
                                     (uint32_t)zs->next_in[2] << 8 | zs->next_in[3]))
                    bad = "incorrect data check";
            }
            if (bad) {
                char what[160];
                snprintf(what, sizeof what, "corrupt deflate data (zlib: %s, %lu of %zu bytes)",
                         bad, (unsigned long)zs->total_out, p->chunk_bytes);
                fail(p, EPLB_ERR_FORMAT, s->off, what);
                return -1;
            }
        } else { /* shuffle */
            if (len != p->chunk_bytes) {
                fail(p, EPLB_ERR_FORMAT, s->off, "shuffled chunk has the wrong size");
                return -1;
            }
            size_t n = p->chunk_bytes / p->esize;
            if (i == last && final) {
                unshuffle(final, cur + i0, n, p->esize, nvalid);
                check_placed(p, final, nvalid);
                rows_placed(p, s->off[0], lo, hi);
                return 0;
            }
            unshuffle(dst, cur, n, p->esize, n);
            memcpy(dst + n * p->esize, cur + n * p->esize, p->chunk_bytes - n * p->esize);
        }
        cur = dst;
        len = p->chunk_bytes;
    }
    if (len != p->chunk_bytes) {
        fail(p, EPLB_ERR_FORMAT, s->off, "chunk has the wrong size");
        return -1;
    }
    if (final)
        memcpy(final, cur + i0 * p->esize, nvalid * p->esize);
    else
        place(p, cur, s->off);
    check_placed(p, final, nvalid);
    if (final)
        rows_placed(p, s->off[0], lo, hi);
    return 0;
}

/* The raw chunk's bytes from the file, where the producer left its
 * offset; 0, or -1 after fail(). */
static int fetch(par_t *p, slot_t *s)
{
    size_t got = 0;
    while (s->at >= 0 && got < s->len) {
        ssize_t n = pread(p->fd, s->data + got, s->len - got, (off_t)(s->at + (int64_t)got));
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            char what[200];
            snprintf(what, sizeof what, "cannot read the raw chunk (%zu bytes at byte %lld: %s)",
                     s->len, (long long)s->at, n < 0 ? strerror(errno) : "the file ends first");
            fail(p, EPLB_ERR_FORMAT, s->off, what);
            return -1;
        }
    }
    return 0;
}

static void *worker(void *arg)
{
    par_t *p = arg;
    unsigned char *a = NULL, *b = NULL;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    hsize_t none[3] = {0, 0, 0};
    /* raw: decode() checks header and trailer */
    if (inflateInit2(&zs, p->zlib_check ? MAX_WBITS : -MAX_WBITS) != Z_OK) {
        fail(p, EPLB_ERR_NOMEM, none, "cannot initialise zlib");
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->rcount == 0 && !p->done && p->st == EPLB_OK)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->rcount == 0 || p->st != EPLB_OK) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        int idx = p->ready[p->rhead];
        p->rhead = (p->rhead + 1) % p->nslots;
        p->rcount--;
        pthread_mutex_unlock(&p->mu);

        int r = fetch(p, &p->slots[idx]);
        if (r == 0)
            r = decode(p, &zs, &p->slots[idx], &a, &b);

        pthread_mutex_lock(&p->mu);
        p->freel[p->nfree++] = idx;
        pthread_cond_signal(&p->cv_free);
        pthread_mutex_unlock(&p->mu);
        if (r < 0)
            break;
    }
    inflateEnd(&zs);
    /* taken with at least chunk_bytes: kept as that much */
    buf_give(p->bufs, a, p->chunk_bytes);
    buf_give(p->bufs, b, p->chunk_bytes);
    return NULL;
}

/* ---- producer ----------------------------------------------------------- */

/* Read an unallocated (never written) chunk through H5Dread so that the
 * fill value comes out as HDF5 would give it. */
static int read_unallocated(par_t *p, hid_t d, hid_t mtype, const hsize_t *off, int rank)
{
    hsize_t start[3], count[3], mdims[3], mstart[3];
    hsize_t lo, hi;
    chunk_rows(p, off[0], &lo, &hi);
    for (int i = 0; i < rank; i++) {
        int j = i + (3 - rank);
        start[i] = off[j];
        count[i] = p->dims[j] - off[j] < p->cdims[j] ? p->dims[j] - off[j] : p->cdims[j];
        mdims[i] = p->dims[j];
        mstart[i] = start[i];
        if (j == 0) { /* rows: only [r0, r1), placed relative to r0 */
            start[i] = off[0] + lo;
            count[i] = hi - lo;
            mdims[i] = p->r1 - p->r0;
            mstart[i] = start[i] - p->r0;
        }
    }
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, mdims, NULL);
    int r = fs >= 0 && ms >= 0 &&
                    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                    H5Sselect_hyperslab(ms, H5S_SELECT_SET, mstart, NULL, count, NULL) >= 0 &&
                    H5Dread(d, mtype, ms, fs, H5P_DEFAULT, p->out) >= 0
                ? 0
                : -1;
    eplb_h5_close(&fs);
    eplb_h5_close(&ms);
    return r;
}

/* The stored size of the chunk at hoff (0: not allocated) and, where the
 * workers read raw chunks themselves (p->fd), its file offset and filter
 * mask (*at = -1: the producer fetches it with H5Dread_chunk); one index
 * lookup per chunk.  Negative if HDF5 failed.  Caller holds the HDF5 lock. */
static int chunk_where(const par_t *p, hid_t d, const hsize_t *hoff, hsize_t *nbytes,
                       int64_t *at, uint32_t *mask)
{
#if H5_VERSION_GE(1, 10, 5)
    if (p->fd >= 0) {
        unsigned fm = 0;
        haddr_t addr = HADDR_UNDEF;
        if (H5Dget_chunk_info_by_coord(d, hoff, &fm, &addr, nbytes) >= 0) {
            if (addr == HADDR_UNDEF)
                *nbytes = 0; /* not allocated */
            else if (addr <= (haddr_t)INT64_MAX)
                *at = (int64_t)addr, *mask = fm; /* no user block: plain offsets */
            return 0;
        }
        H5Eclear2(H5E_DEFAULT);
    }
#endif
    (void)p;
    return H5Dget_chunk_storage_size(d, hoff, nbytes) < 0 ? -1 : 0;
}

/* Fetch every raw chunk in order and queue it; caller holds the HDF5 lock. */
static void produce(par_t *p, hid_t d, hid_t mtype, int rank)
{
    hsize_t n[3];
    for (int i = 0; i < 3; i++)
        n[i] = (p->dims[i] + p->cdims[i] - 1) / p->cdims[i];
    for (hsize_t c0 = p->r0 / p->cdims[0]; c0 * p->cdims[0] < p->r1; c0++)
        for (hsize_t c1 = 0; c1 < n[1]; c1++)
            for (hsize_t c2 = 0; c2 < n[2]; c2++) {
                hsize_t off[3] = {c0 * p->cdims[0], c1 * p->cdims[1], c2 * p->cdims[2]};
                hsize_t *hoff = off + (3 - rank); /* HDF5's rank */
                hsize_t nbytes = 0;
                int64_t at = -1;
                uint32_t mask = 0;
                if (chunk_where(p, d, hoff, &nbytes, &at, &mask) < 0 || nbytes == 0) {
                    H5Eclear2(H5E_DEFAULT);
                    atomic_store(&p->unchecked, 1); /* the fill value */
                    if (read_unallocated(p, d, mtype, off, rank) < 0) {
                        fail(p, EPLB_ERR_FORMAT, off, eplb_h5_reason());
                        return;
                    }
                    continue;
                }
                pthread_mutex_lock(&p->mu);
                while (p->nfree == 0 && p->st == EPLB_OK)
                    pthread_cond_wait(&p->cv_free, &p->mu);
                if (p->st != EPLB_OK) {
                    pthread_mutex_unlock(&p->mu);
                    return;
                }
                int idx = p->freel[--p->nfree];
                pthread_mutex_unlock(&p->mu);

                slot_t *s = &p->slots[idx];
                if (s->cap < nbytes) {
                    /* at least a raw chunk: a compressed one rarely needs more */
                    buf_give(p->bufs, s->data, s->cap);
                    s->data = buf_take(p->bufs, nbytes > p->chunk_bytes ? nbytes : p->chunk_bytes,
                                       &s->cap);
                    if (!s->data) {
                        s->cap = 0;
                        fail(p, EPLB_ERR_NOMEM, off, "out of memory for a raw chunk");
                        return;
                    }
                }
                s->at = at;
                if (at < 0 && H5Dread_chunk(d, H5P_DEFAULT, hoff, &mask, s->data) < 0) {
                    char what[200];
                    snprintf(what, sizeof what, "cannot read raw chunk (hdf5: %s)",
                             eplb_h5_reason());
                    fail(p, EPLB_ERR_FORMAT, off, what);
                    return;
                }
                s->len = nbytes;
                s->mask = mask;
                memcpy(s->off, off, sizeof off);

                pthread_mutex_lock(&p->mu);
                p->ready[(p->rhead + p->rcount) % p->nslots] = idx;
                p->rcount++;
                pthread_cond_signal(&p->cv_work);
                pthread_mutex_unlock(&p->mu);
            }
}

/* H5Dget_chunk_info_by_coord walks the dataset's chunk index from its
 * start for every call (HDF5 1.10.8: H5B_iterate under
 * H5D__get_chunk_info_by_coord), so a read that looks up each of n chunks
 * costs n^2/2 index records: 50,000 chunks of 4 KiB (400,000 tokens of
 * 4 x 32 f32 logits) took 18 s for `info`, 100,000 one-row chunks 98 s,
 * where a plain H5Dread takes 0.4 s.  Past this many chunks the producer
 * fetches raw chunks with H5Dread_chunk instead (an index lookup, O(log n)
 * per chunk; as fast for the writer's 4 MB chunks on the build machine,
 * 513 against 512 MB/s in `bench io` on a 592 MB trace, whose 285 chunks
 * take the addresses).  8192 chunks cost the lookups ~0.5 s; the writer
 * makes that many only past ~30 GB. */
#define ADDR_LOOKUP_MAX_CHUNKS 8192

static uint64_t plan_chunks(const par_t *p)
{
    uint64_t n = 1;
    for (int i = 0; i < 3; i++) {
        const uint64_t c = (p->dims[i] + p->cdims[i] - 1) / p->cdims[i];
        if (__builtin_mul_overflow(n, c, &n))
            return UINT64_MAX;
    }
    return n;
}

/* A descriptor of the trace's file for the workers' reads of raw chunks:
 * a duplicate of HDF5's own (the sec2 driver's), so that it is the file
 * HDF5 opened even if the path now names another; -1 where HDF5 cannot
 * give chunk addresses (before 1.10.5), the driver is not sec2, or the
 * addresses are not plain file offsets (a user block shifts them). */
static int raw_fd(hid_t d)
{
    int fd = -1;
#if H5_VERSION_GE(1, 10, 5)
    hsize_t ub = 1;
    void *h = NULL;
    eplb_h5_lock();
    hid_t f = H5Iget_file_id(d), fcpl = f >= 0 ? H5Fget_create_plist(f) : -1,
          fapl = f >= 0 ? H5Fget_access_plist(f) : -1;
    if (fcpl < 0 || H5Pget_userblock(fcpl, &ub) < 0)
        ub = 1;
    if (ub == 0 && fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 &&
        H5Fget_vfd_handle(f, fapl, &h) >= 0 && h)
        fd = fcntl(*(const int *)h, F_DUPFD_CLOEXEC, 0);
    eplb_h5_close(&fcpl);
    eplb_h5_close(&fapl);
    if (f >= 0)
        H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    eplb_h5_unlock();
#else
    (void)d;
#endif
    return fd;
}

/* Rows [r0, r1) of d (r1 <= 0: all rows; the caller checked the range)
 * into buf with nthreads workers; falls back to `serial` where the storage
 * is not supported.  With `check` (logits), *clean is set to 1 where the
 * workers scanned every value read for NaN/Inf and found none, else 0. */
static eplb_status_t read_rows_parallel(const eplb_trace_t *tr, hid_t d, hid_t mt,
                                        const char *name, void *buf, int64_t r0, int64_t r1,
                                        int nthreads,
                                        eplb_status_t (*serial)(const eplb_trace_t *, void *,
                                                                int64_t, int64_t),
                                        int check, int *clean, eplb_trace_rows_fn on_rows,
                                        void *on_rows_ctx, int64_t *delivered)
{
    if (clean)
        *clean = 0;
    if (delivered)
        *delivered = 0;
    if (nthreads <= 0)
        nthreads = eplb_num_threads();
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;

    par_t p;
    memset(&p, 0, sizeof p);
    p.fd = -1;
    p.path = tr->path;
    p.name = name;
    p.bufs = tr->bufs;
    p.zlib_check = eplb_env_on("EPLB_ZLIB_CHECK");
    p.on_rows = on_rows;
    p.on_rows_ctx = on_rows_ctx;
    atomic_init(&p.delivered, 0);
    p.out = buf;
    eplb_h5_lock();
    int ok = plan_init(&p, d, mt);
    eplb_h5_unlock();
    if (ok < 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: cannot read the storage layout",
                              tr->path, name);
    if (ok == 0)
        return serial(tr, buf, r0, r1);
    if (r1 <= 0)
        r1 = (int64_t)p.dims[0];
    if (r0 == r1)
        return EPLB_OK;
    p.r0 = (hsize_t)r0;
    p.r1 = (hsize_t)r1;
    p.fd = plan_chunks(&p) <= ADDR_LOOKUP_MAX_CHUNKS ? raw_fd(d) : -1;
    p.check = check;
    p.check_dt = tr->info.logits_dtype;
    atomic_init(&p.unchecked, 0);
    atomic_init(&p.nonfinite, 0);

    eplb_status_t st = EPLB_OK;
    pthread_t th[MAX_THREADS];
    int started = 0;
    p.nslots = 2 * nthreads + 2;
    p.slots = calloc((size_t)p.nslots, sizeof *p.slots);
    p.ready = calloc((size_t)p.nslots, sizeof *p.ready);
    p.freel = calloc((size_t)p.nslots, sizeof *p.freel);
    if (!p.slots || !p.ready || !p.freel) {
        st = eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", tr->path);
        goto out_free;
    }
    for (int i = 0; i < p.nslots; i++)
        p.freel[p.nfree++] = i;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv_work, NULL);
    pthread_cond_init(&p.cv_free, NULL);
    for (; started < nthreads; started++)
        if (eplb_thread_create(&th[started], NULL, worker, &p) != 0)
            break;
    if (started == 0) {
        st = eplb_error_set(EPLB_ERR_INTERNAL, "%s: cannot start decode threads", tr->path);
        goto out_sync;
    }
    eplb_h5_lock();
    produce(&p, d, mt, p.rank);
    eplb_h5_unlock();
    pthread_mutex_lock(&p.mu);
    p.done = 1;
    pthread_cond_broadcast(&p.cv_work);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (p.st != EPLB_OK)
        st = eplb_error_set(p.st, "%s", p.msg);
    else if (clean && check)
        *clean = !atomic_load(&p.unchecked) && !atomic_load(&p.nonfinite);
    if (delivered)
        *delivered = (int64_t)atomic_load(&p.delivered);
out_sync:
    pthread_cond_destroy(&p.cv_free);
    pthread_cond_destroy(&p.cv_work);
    pthread_mutex_destroy(&p.mu);
out_free:
    if (p.fd >= 0)
        close(p.fd);
    if (p.slots)
        for (int i = 0; i < p.nslots; i++)
            buf_give(p.bufs, p.slots[i].data, p.slots[i].cap);
    free(p.slots);
    free(p.ready);
    free(p.freel);
    return st;
}

static eplb_status_t serial_all(const eplb_trace_t *tr, void *buf, int64_t r0, int64_t r1)
{
    (void)r0;
    (void)r1;
    return eplb_trace_read_all_serial(tr, buf);
}

eplb_status_t eplb_trace_read_all_parallel(const eplb_trace_t *tr, void *buf, int nthreads)
{
    hid_t mt;
    const char *name;
    hid_t d = eplb_trace_bulk_dataset(tr, &mt, &name);
    if (d < 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: no /router/logits or /router/topk_ids to read",
                              tr->path);
    if (tr->info.num_tokens == 0)
        return EPLB_OK;
    return read_rows_parallel(tr, d, mt, name, buf, 0, 0, nthreads, serial_all, 0, NULL, NULL,
                              NULL, NULL);
}

/* the check follows in eplb_trace_read_logits_parallel (the parallel path
 * checks in its workers) */
static eplb_status_t serial_logits(const eplb_trace_t *tr, void *buf, int64_t r0, int64_t r1)
{
    return eplb_trace_read_logits_unchecked(tr, buf, r0, r1);
}

eplb_status_t eplb_trace_read_logits_parallel(const eplb_trace_t *tr, void *buf,
                                              int64_t tok_begin, int64_t tok_end, int nthreads)
{
    return eplb_trace_read_logits_each(tr, buf, tok_begin, tok_end, nthreads, NULL, NULL, NULL);
}

eplb_status_t eplb_trace_read_logits_each(const eplb_trace_t *tr, void *buf,
                                          int64_t tok_begin, int64_t tok_end, int nthreads,
                                          eplb_trace_rows_fn on_rows, void *ctx, int *all)
{
    if (all)
        *all = 0;
    if (tr->d_logits < 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: the trace has no dataset /router/logits",
                              tr->path);
    if (tok_begin < 0 || tok_end < tok_begin || tok_end > tr->info.num_tokens)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: /router/logits: range [%lld, %lld) outside [0, %lld)", tr->path,
                              (long long)tok_begin, (long long)tok_end,
                              (long long)tr->info.num_tokens);
    if (tok_begin == tok_end) {
        if (all)
            *all = 1; /* nothing to deliver */
        return EPLB_OK;
    }
    int clean = 0;
    int64_t delivered = 0;
    EPLB_CHECK(read_rows_parallel(tr, tr->d_logits, tr->logits_mtype, "/router/logits", buf,
                                  tok_begin, tok_end, nthreads, serial_logits, 1, &clean,
                                  on_rows, ctx, &delivered));
    if (all)
        *all = delivered == tok_end - tok_begin;
    /* not scanned by the workers, or a bad value: one scan names the first */
    return clean ? EPLB_OK : eplb_trace_check_logits(tr, buf, tok_begin, tok_end);
}
