/* writer.c - trace schema v1 writer: extendible chunked datasets, one step
 * appended at a time, written under a temporary name and renamed on finish.
 *
 * Every appendable dataset buffers exactly one chunk of rows in memory and
 * writes it when full, so each chunk is compressed once (a chunk larger
 * than HDF5's chunk cache would otherwise be re-read, inflated, modified
 * and deflated again by every partial write). */
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "h5util.h"
#include "tmpfile_guard.h"
#include "zpool.h"

#define LOGITS_CHUNK_BYTES (2u << 20)
#define OTHER_CHUNK_BYTES (1u << 20)
#define DEFAULT_DEFLATE 4
/* Logits chunks are compressed on worker threads (zpool.c) and stored with
 * H5Dwrite_chunk once ZLAG newer chunks are in flight.  The lag is a
 * constant, not a function of the thread count, so that the order of
 * writes, and so the file, is the same on every machine. */
#define ZLAG 16
#define ZDEPTH (ZLAG + 2)

/* One extendible dataset [rows, inner...] growing along its first axis. */
typedef struct {
    const char *name;
    hid_t dset;
    hid_t mtype;        /* memory type of buf (owned) */
    int rank;
    hsize_t inner[2];   /* trailing dims */
    size_t row_bytes;
    hsize_t chunk_rows;
    unsigned char *buf; /* chunk_rows * row_bytes */
    hsize_t nbuf;       /* rows buffered */
    hsize_t nrows;      /* rows in the file */
    eplb_zpool_t *zp;   /* parallel compression (buf then belongs to it) */
} appender_t;

struct eplb_trace_writer {
    char *path, *tmp;
    int guard; /* tmpfile_guard slot of tmp, -1 if none */
    hid_t file;
    int L, E, K;
    eplb_dtype_t dt;
    eplb_route_cfg_t route;
    unsigned levels;
    int want_w, want_phase, want_src;
    int no_shuffle; /* deflate only (opts.no_shuffle) */
    appender_t offs, phase, src, logits, ids, wts, counts;
    float *bias; /* [L][E] or NULL */
    /* written at finish, closed after the file's flush (a small dataset's
     * data waits in HDF5's sieve buffer, and a failed write at its close
     * was not seen: exit 0, the bias all zeros) */
    hid_t bias_d;
    int64_t nsteps, ntok;
};

static void app_init(appender_t *a)
{
    memset(a, 0, sizeof *a);
    a->dset = H5I_INVALID_HID;
    a->mtype = H5I_INVALID_HID;
}

static void app_close(appender_t *a)
{
    eplb_h5_close(&a->dset);
    eplb_h5_close(&a->mtype);
    if (a->zp)
        eplb_zpool_destroy(a->zp);
    else
        free(a->buf);
    a->zp = NULL;
    a->buf = NULL;
}

/* Store the oldest compressed chunk of the pool. */
static eplb_status_t app_drain_one(appender_t *a, const char *path)
{
    const void *data;
    size_t len;
    uint64_t rows;
    EPLB_CHECK(eplb_zpool_next(a->zp, &data, &len, &rows));
    hsize_t dims[3] = {a->nrows + rows, a->inner[0], a->inner[1]};
    hsize_t off[3] = {a->nrows, 0, 0};
    if (H5Dset_extent(a->dset, dims) < 0 ||
        H5Dwrite_chunk(a->dset, H5P_DEFAULT, 0, off, len, data) < 0)
        return eplb_h5_fail(EPLB_ERR_IO, path, a->name, "cannot write a compressed chunk");
    a->nrows += rows;
    return EPLB_OK;
}

/* Hand the full (or, at the end, partial) chunk buffer to the pool; store
 * chunks beyond the lag; take a fresh buffer. */
static eplb_status_t app_submit(appender_t *a, const char *path)
{
    if (a->nbuf < a->chunk_rows) /* padding of the last chunk: zeros, as HDF5 */
        memset(a->buf + a->nbuf * a->row_bytes, 0, (a->chunk_rows - a->nbuf) * a->row_bytes);
    eplb_zpool_submit(a->zp, a->buf, a->nbuf);
    a->buf = NULL;
    a->nbuf = 0;
    while (eplb_zpool_pending(a->zp) > ZLAG)
        EPLB_CHECK(app_drain_one(a, path));
    a->buf = eplb_zpool_buffer(a->zp);
    if (!a->buf)
        return eplb_error_set(EPLB_ERR_INTERNAL, "%s: %s: no free chunk buffer", path, a->name);
    return EPLB_OK;
}

/* Objects are created without modification times, so that the same
 * inputs give the same file, byte for byte (the generator relies on it);
 * the padding of partial chunks is the default fill value (zeros). */
static hid_t ensure_group(hid_t file, const char *name)
{
    if (H5Lexists(file, name, H5P_DEFAULT) > 0)
        return H5Gopen2(file, name, H5P_DEFAULT);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0) {
        eplb_h5_close(&gcpl);
        return H5I_INVALID_HID;
    }
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

/* Create dataset `name` ([0, inner...], unlimited first axis) chunked by
 * chunk_rows rows with shuffle (unless w->no_shuffle) then deflate.
 * ftype/mtype: file and memory types (mtype is taken over). */
static eplb_status_t app_create(appender_t *a, const eplb_trace_writer_t *w,
                                const char *name, hid_t ftype, hid_t mtype, int rank,
                                hsize_t d1, hsize_t d2, size_t target_bytes,
                                int64_t chunk_rows, int level)
{
    eplb_status_t st = EPLB_OK;
    hid_t dcpl = H5I_INVALID_HID, space = H5I_INVALID_HID, grp = H5I_INVALID_HID;
    a->name = name;
    a->mtype = mtype;
    a->rank = rank;
    a->inner[0] = d1;
    a->inner[1] = d2;
    size_t esize = H5Tget_size(mtype);
    a->row_bytes = esize * (rank > 1 ? d1 : 1) * (rank > 2 ? d2 : 1);
    if (chunk_rows > 0)
        a->chunk_rows = (hsize_t)chunk_rows;
    else
        a->chunk_rows = target_bytes / a->row_bytes > 0 ? target_bytes / a->row_bytes : 1;
    a->buf = malloc(a->chunk_rows * a->row_bytes);
    EPLB_ALLOC_GOTO(a->buf, st, out);

    hsize_t dims[3] = {0, d1, d2}, maxd[3] = {H5S_UNLIMITED, d1, d2};
    hsize_t cdims[3] = {a->chunk_rows, d1, d2};
    char gname[64];
    const char *slash = strchr(name + 1, '/');
    snprintf(gname, sizeof gname, "%.*s", (int)(slash - name), name);
    grp = ensure_group(w->file, gname);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    space = H5Screate_simple(rank, dims, maxd);
    if (grp < 0 || dcpl < 0 || space < 0 || H5Pset_chunk(dcpl, rank, cdims) < 0 ||
        (!w->no_shuffle && H5Pset_shuffle(dcpl) < 0) || H5Pset_deflate(dcpl, (unsigned)level) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0) {
        st = eplb_h5_fail(EPLB_ERR_IO, w->path, name, "cannot set up dataset");
        goto out;
    }
    a->dset = H5Dcreate2(w->file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (a->dset < 0)
        st = eplb_h5_fail(EPLB_ERR_IO, w->path, name, "cannot create dataset");
out:
    eplb_h5_close(&grp);
    eplb_h5_close(&dcpl);
    eplb_h5_close(&space);
    return st;
}

static eplb_status_t app_flush(appender_t *a, const char *path)
{
    if (a->dset >= 0 && a->zp) {
        if (a->nbuf > 0)
            EPLB_CHECK(app_submit(a, path));
        while (eplb_zpool_pending(a->zp) > 0)
            EPLB_CHECK(app_drain_one(a, path));
        return EPLB_OK;
    }
    if (a->dset < 0 || a->nbuf == 0)
        return EPLB_OK;
    eplb_status_t st = EPLB_OK;
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    hsize_t dims[3] = {a->nrows + a->nbuf, a->inner[0], a->inner[1]};
    hsize_t start[3] = {a->nrows, 0, 0}, count[3] = {a->nbuf, a->inner[0], a->inner[1]};
    if (H5Dset_extent(a->dset, dims) < 0 || (fs = H5Dget_space(a->dset)) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (ms = H5Screate_simple(a->rank, count, NULL)) < 0 ||
        H5Dwrite(a->dset, a->mtype, ms, fs, H5P_DEFAULT, a->buf) < 0) {
        st = eplb_h5_fail(EPLB_ERR_IO, path, a->name, "cannot write rows");
        goto out;
    }
    a->nrows += a->nbuf;
    a->nbuf = 0;
out:
    eplb_h5_close(&fs);
    eplb_h5_close(&ms);
    return st;
}

/* Room in the chunk buffer: pointer to the next free row, *room rows. */
static unsigned char *app_room(const appender_t *a, hsize_t *room)
{
    *room = a->chunk_rows - a->nbuf;
    return a->buf + a->nbuf * a->row_bytes;
}

static eplb_status_t app_commit(appender_t *a, hsize_t n, const char *path)
{
    a->nbuf += n;
    if (a->nbuf < a->chunk_rows)
        return EPLB_OK;
    return a->zp ? app_submit(a, path) : app_flush(a, path);
}

/* Append n rows that need no conversion. */
static eplb_status_t app_push(appender_t *a, const void *rows, hsize_t n, const char *path)
{
    const unsigned char *src = rows;
    while (n > 0) {
        hsize_t room;
        unsigned char *dst = app_room(a, &room);
        hsize_t take = n < room ? n : room;
        memcpy(dst, src, take * a->row_bytes);
        EPLB_CHECK(app_commit(a, take, path));
        src += take * a->row_bytes;
        n -= take;
    }
    return EPLB_OK;
}

static eplb_status_t check_opts(const char *path, const eplb_trace_writer_opts_t *o)
{
    const eplb_route_cfg_t *r = &o->route;
    const char *bad = NULL;
    if (o->num_layers < 1 || o->num_layers > EPLB_TRACE_MAX_LAYERS)
        bad = "num_layers must be in 1..4096"; /* EPLB_TRACE_MAX_LAYERS */
    else if (r->num_experts < 1 || r->num_experts > EPLB_MAX_EXPERTS)
        bad = "num_experts must be in 1..512";
    else if (r->top_k < 1 || r->top_k > r->num_experts || r->top_k > EPLB_MAX_TOPK)
        bad = "top_k must be in 1..min(num_experts, 16)";
    else if (r->num_groups < 1 || r->num_groups > EPLB_MAX_GROUPS ||
             r->num_experts % r->num_groups != 0)
        bad = "num_groups must be in 1..32 and divide num_experts";
    else if (r->topk_groups < 1 || r->topk_groups > r->num_groups)
        bad = "topk_groups must be in 1..num_groups";
    else if (r->top_k > r->topk_groups * (r->num_experts / r->num_groups))
        bad = "top_k must not exceed the experts of the kept groups "
              "(topk_groups x num_experts / num_groups)";
    else if (r->renormalize != 0 && r->renormalize != 1)
        bad = "renormalize must be 0 or 1";
    else if (!(r->routed_scaling_factor > 0) || !isfinite(r->routed_scaling_factor))
        bad = "routed_scaling_factor must be finite and > 0";
    else if (r->scoring != EPLB_SCORING_SOFTMAX && r->scoring != EPLB_SCORING_SIGMOID)
        bad = "scoring must be softmax or sigmoid";
    else if ((o->levels & (EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS)) == 0 ||
             (o->levels & ~7u) != 0)
        bad = "levels must name at least one of logits, topk, counts";
    else if (o->topk_weights && !(o->levels & EPLB_LEVEL_TOPK))
        bad = "topk_weights needs the topk level";
    else if ((unsigned)o->logits_dtype > EPLB_DTYPE_BF16)
        bad = "unknown logits dtype";
    else if (o->model && strlen(o->model) > EPLB_TRACE_MODEL_MAX)
        bad = "the model name is longer than 127 bytes (EPLB_TRACE_MODEL_MAX)";
    else if (o->deflate_level < 0 || o->deflate_level > 9)
        bad = "deflate_level must be in 0..9";
    else if (o->chunk_rows < 0)
        bad = "chunk_rows must be >= 0";
    if (bad)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: trace writer: %s", path, bad);
    return EPLB_OK;
}

static eplb_status_t write_root_attrs(eplb_trace_writer_t *w,
                                      const eplb_trace_writer_opts_t *o)
{
    const eplb_route_cfg_t *r = &o->route;
    hid_t f = w->file;
    const char *p = w->path;
    EPLB_CHECK(eplb_h5_attr_write_int(f, "eplb_trace_version", EPLB_TRACE_VERSION, p));
    EPLB_CHECK(eplb_h5_attr_write_str(f, "model", o->model ? o->model : "", p));
    EPLB_CHECK(eplb_h5_attr_write_int(f, "num_layers", o->num_layers, p));
    EPLB_CHECK(eplb_h5_attr_write_int(f, "num_experts", r->num_experts, p));
    EPLB_CHECK(eplb_h5_attr_write_int(f, "top_k", r->top_k, p));
    EPLB_CHECK(eplb_h5_attr_write_str(f, "scoring", eplb_scoring_name(r->scoring), p));
    EPLB_CHECK(eplb_h5_attr_write_int(f, "num_groups", r->num_groups, p));
    EPLB_CHECK(eplb_h5_attr_write_int(f, "topk_groups", r->topk_groups, p));
    EPLB_CHECK(eplb_h5_attr_write_int(f, "renormalize", r->renormalize, p));
    EPLB_CHECK(eplb_h5_attr_write_double(f, "routed_scaling_factor",
                                         (double)r->routed_scaling_factor, p));
    EPLB_CHECK(eplb_h5_attr_write_str(f, "source", o->source ? o->source : "", p));
    if (o->model_config)
        EPLB_CHECK(eplb_h5_attr_write_str(f, "model_config", o->model_config, p));
    return EPLB_OK;
}

static eplb_status_t create_datasets(eplb_trace_writer_t *w,
                                     const eplb_trace_writer_opts_t *o)
{
    int lvl = o->deflate_level ? o->deflate_level : DEFAULT_DEFLATE;
    int64_t cr = o->chunk_rows;
    hsize_t L = (hsize_t)w->L, E = (hsize_t)w->E, K = (hsize_t)w->K;
    EPLB_CHECK(app_create(&w->offs, w, "/steps/token_offset", H5T_STD_I64LE,
                          H5Tcopy(H5T_NATIVE_INT64), 1, 0, 0, 64u << 10, 0, lvl));
    int64_t zero = 0;
    EPLB_CHECK(app_push(&w->offs, &zero, 1, w->path));
    if (o->phase)
        EPLB_CHECK(app_create(&w->phase, w, "/steps/phase", H5T_STD_U8LE,
                              H5Tcopy(H5T_NATIVE_UINT8), 1, 0, 0, 64u << 10, 0, lvl));
    if (o->src_rank)
        EPLB_CHECK(app_create(&w->src, w, "/tokens/src_rank", H5T_STD_U16LE,
                              H5Tcopy(H5T_NATIVE_UINT16), 1, 0, 0, OTHER_CHUNK_BYTES, cr,
                              lvl));
    if (o->levels & EPLB_LEVEL_LOGITS) {
        /* The memory type is the file type: bf16/f16 are converted in C, so
         * reading needs no HDF5 conversion path. */
        hid_t ft = eplb_h5_type_logits(o->logits_dtype);
        if (ft < 0)
            return eplb_h5_fail(EPLB_ERR_INTERNAL, w->path, "/router/logits",
                                "cannot build the logits type");
        appender_t *a = &w->logits;
        EPLB_CHECK(app_create(a, w, "/router/logits", ft, ft, 3, L, E, LOGITS_CHUNK_BYTES, cr,
                              lvl));
        int nt = o->threads > 0 ? o->threads : eplb_num_threads();
        EPLB_CHECK(eplb_zpool_create(&a->zp, nt, a->chunk_rows * a->row_bytes,
                                     eplb_dtype_size(o->logits_dtype), !w->no_shuffle, lvl,
                                     ZDEPTH));
        free(a->buf);
        a->buf = eplb_zpool_buffer(a->zp);
    }
    if (o->levels & EPLB_LEVEL_TOPK) {
        int wide = w->E > 256;
        EPLB_CHECK(app_create(&w->ids, w, "/router/topk_ids",
                              wide ? H5T_STD_U16LE : H5T_STD_U8LE,
                              H5Tcopy(wide ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT8), 3, L, K,
                              OTHER_CHUNK_BYTES, cr, lvl));
        if (o->topk_weights)
            EPLB_CHECK(app_create(&w->wts, w, "/router/topk_weights", H5T_IEEE_F32LE,
                                  H5Tcopy(H5T_NATIVE_FLOAT), 3, L, K, OTHER_CHUNK_BYTES, cr,
                                  lvl));
    }
    if (o->levels & EPLB_LEVEL_COUNTS)
        EPLB_CHECK(app_create(&w->counts, w, "/load/counts", H5T_STD_I32LE,
                              H5Tcopy(H5T_NATIVE_INT32), 3, L, E, OTHER_CHUNK_BYTES, cr,
                              lvl));
    return EPLB_OK;
}

/* Close everything (datasets before the file), optionally delete the
 * temporary file, free w. */
static void writer_free(eplb_trace_writer_t *w, int unlink_tmp)
{
    appender_t *apps[] = {&w->offs, &w->phase, &w->src, &w->logits,
                          &w->ids,  &w->wts,   &w->counts};
    if (unlink_tmp && w->file >= 0)
        eplb_h5_file_discard_writes(w->file);
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++)
        app_close(apps[i]);
    eplb_h5_close(&w->bias_d);
    eplb_h5_file_close_all(&w->file, NULL);
    if (unlink_tmp && w->tmp)
        unlink(w->tmp);
    eplb_tmp_guard_disarm(w->guard);
    free(w->bias);
    free(w->path);
    free(w->tmp);
    free(w);
}

eplb_status_t eplb_trace_writer_check_path(const char *path)
{
    if (!path || !path[0])
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "trace writer: empty output path");
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return eplb_error_set(EPLB_ERR_IO, "%s: %s", path,
                              S_ISDIR(sb.st_mode) ? "is a directory"
                                                  : "exists and is not a regular file");
    /* the directory the temporary file goes to (the path up to its last
     * '/'; "." if none) must exist and be writable */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) >= sizeof dir)
        return eplb_error_set(EPLB_ERR_IO, "%s: path too long", path);
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    const char *why = NULL;
    if (stat(dir, &sb) != 0)
        why = strerror(errno);
    else if (!S_ISDIR(sb.st_mode))
        why = "not a directory";
    else if (access(dir, W_OK | X_OK) != 0)
        why = strerror(errno);
    if (why)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot create: directory %s: %s", path, dir,
                              why);
    return EPLB_OK;
}

eplb_status_t eplb_trace_writer_create(eplb_trace_writer_t **out, const char *path,
                                       const eplb_trace_writer_opts_t *opts)
{
    if (!path || !opts)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "trace writer: NULL path or options");
    EPLB_CHECK(check_opts(path, opts));
    EPLB_CHECK(eplb_trace_writer_check_path(path));
    eplb_status_t st = EPLB_OK;
    hid_t fapl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID;
    int fd = -1; /* >= 0 once the temporary file exists (closed at once) */
    eplb_trace_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", path);
    appender_t *apps[] = {&w->offs, &w->phase, &w->src, &w->logits,
                          &w->ids,  &w->wts,   &w->counts};
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++)
        app_init(apps[i]);
    w->file = H5I_INVALID_HID;
    w->bias_d = H5I_INVALID_HID;
    w->guard = -1;
    w->L = opts->num_layers;
    w->E = opts->route.num_experts;
    w->K = opts->route.top_k;
    w->dt = opts->logits_dtype;
    w->route = opts->route;
    w->levels = opts->levels;
    w->want_w = opts->topk_weights;
    w->want_phase = opts->phase;
    w->want_src = opts->src_rank;
    w->no_shuffle = opts->no_shuffle != 0;
    w->path = strdup(path);
    size_t tn = strlen(path) + 32;
    w->tmp = malloc(tn);
    EPLB_ALLOC_GOTO(w->path, st, out_free);
    EPLB_ALLOC_GOTO(w->tmp, st, out_free);
    snprintf(w->tmp, tn, "%s.tmp.%ld", path, (long)getpid());
    /* a signal from now on deletes the temporary file */
    w->guard = eplb_tmp_guard_arm(w->tmp);
    /* create it here, for the reason of a failure (HDF5 does not say) */
    fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        st = eplb_error_set(EPLB_ERR_IO, "%s: cannot create the temporary file %s: %s", path,
                            w->tmp, strerror(errno));
        goto out_free;
    }
    close(fd);

    eplb_h5_lock();
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fapl < 0 || fcpl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_obj_track_times(fcpl, 0) < 0) {
        st = eplb_h5_fail(EPLB_ERR_INTERNAL, path, NULL, "cannot set up file access");
        goto out_unlock;
    }
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (w->file < 0) {
        st = eplb_h5_fail(EPLB_ERR_IO, w->tmp, NULL, "cannot create file");
        goto out_unlock;
    }
    EPLB_CHECK_GOTO(write_root_attrs(w, opts), st, out_unlock);
    EPLB_CHECK_GOTO(create_datasets(w, opts), st, out_unlock);
out_unlock:
    eplb_h5_close(&fapl);
    eplb_h5_close(&fcpl);
    eplb_h5_unlock();
out_free:
    if (st != EPLB_OK) {
        int created = w->tmp && fd >= 0;
        eplb_h5_lock();
        writer_free(w, created);
        eplb_h5_unlock();
        return st;
    }
    *out = w;
    return EPLB_OK;
}

/* Checks of one step's inputs, before anything is buffered, so that a
 * rejected step leaves the writer unchanged. */
static eplb_status_t check_step(const eplb_trace_writer_t *w, int64_t ntok,
                                const float *logits, const int32_t *ids, const float *wts,
                                const int32_t *counts, const uint16_t *src, uint8_t phase)
{
    const char *p = w->path;
    int64_t s = w->nsteps;
    if (ntok < 0)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: step %lld: negative token count",
                              p, (long long)s);
    const char *missing = NULL;
    if ((w->levels & EPLB_LEVEL_LOGITS) && !logits && ntok > 0)
        missing = "logits";
    else if ((w->levels & EPLB_LEVEL_TOPK) && !ids && ntok > 0)
        missing = "topk_ids";
    else if (w->want_w && !wts && ntok > 0)
        missing = "topk_weights";
    else if ((w->levels & EPLB_LEVEL_COUNTS) && !counts)
        missing = "counts";
    else if (w->want_src && !src && ntok > 0)
        missing = "src_rank";
    if (missing)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: step %lld: %s is NULL", p,
                              (long long)s, missing);
    /* what the reader would refuse (traces/FORMAT.md, Limits) is not
     * written; the totals first (ntok up to 2^39 keeps the product below) */
    if (ntok > EPLB_TRACE_MAX_TOKENS - w->ntok || w->nsteps + 1 > EPLB_TRACE_MAX_STEPS)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: step %lld: past the %lld tokens or %lld steps a trace may "
                              "hold", p, (long long)s, (long long)EPLB_TRACE_MAX_TOKENS,
                              (long long)EPLB_TRACE_MAX_STEPS);
    if ((w->levels & (EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK)) &&
        (uint64_t)ntok * (uint64_t)w->L * (uint64_t)w->K * 4 > EPLB_TRACE_MAX_STEP_ID_BYTES)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: step %lld: %lld tokens x %d layers x top-%d: its top-k ids "
                              "would pass 2 GiB, the most a reader holds for one step",
                              p, (long long)s, (long long)ntok, w->L, w->K);
    if (w->want_phase && phase > 2)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: step %lld: phase %u (expected 0 prefill, 1 decode, 2 mixed)",
                              p, (long long)s, phase);
    int64_t LE = (int64_t)w->L * w->E, LK = (int64_t)w->L * w->K;
    /* |x| <= lim is false for NaN and Inf, and for a finite float32 that
     * the stored type cannot hold: it would be written as Inf, which the
     * reader refuses (the limits of eplb_record.py) */
    const float lim = w->dt == EPLB_DTYPE_F16    ? 65504.0f
                      : w->dt == EPLB_DTYPE_BF16 ? 3.38953139e38f
                                                 : FLT_MAX;
    if (w->levels & EPLB_LEVEL_LOGITS)
        for (int64_t i = 0; i < ntok * LE; i++)
            if (!(fabsf(logits[i]) <= lim)) {
                char what[64];
                if (isfinite(logits[i]))
                    snprintf(what, sizeof what, "logit %g beyond %s's range (%g)",
                             (double)logits[i], eplb_dtype_name(w->dt), (double)lim);
                else
                    snprintf(what, sizeof what, "non-finite logit");
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "%s: /router/logits: step %lld token %lld layer %lld "
                                      "expert %lld: %s",
                                      p, (long long)s, (long long)(w->ntok + i / LE),
                                      (long long)(i % LE / w->E), (long long)(i % w->E), what);
            }
    if (w->levels & EPLB_LEVEL_TOPK)
        for (int64_t i = 0; i < ntok * LK; i++)
            if (ids[i] < 0 || ids[i] >= w->E)
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "%s: /router/topk_ids: step %lld token %lld layer %lld: "
                                      "id %d outside [0, %d)",
                                      p, (long long)s, (long long)(w->ntok + i / LK),
                                      (long long)(i % LK / w->K), ids[i], w->E);
    /* as the reader checks them */
    if (w->levels & EPLB_LEVEL_COUNTS)
        return eplb_trace_counts_check(EPLB_ERR_INVALID_ARG, p, s, counts, w->L, w->E, w->K,
                                       ntok);
    return EPLB_OK;
}

static eplb_status_t push_logits(eplb_trace_writer_t *w, const float *src, int64_t ntok)
{
    appender_t *a = &w->logits;
    size_t per = (size_t)w->L * (size_t)w->E;
    while (ntok > 0) {
        hsize_t room;
        unsigned char *dst = app_room(a, &room);
        hsize_t take = (hsize_t)ntok < room ? (hsize_t)ntok : room;
        size_t n = (size_t)take * per;
        if (w->dt == EPLB_DTYPE_F32) {
            memcpy(dst, src, n * sizeof(float));
        } else {
            uint16_t *h = (uint16_t *)dst;
            if (w->dt == EPLB_DTYPE_BF16)
                for (size_t i = 0; i < n; i++)
                    h[i] = eplb_f32_to_bf16(src[i]);
            else
                for (size_t i = 0; i < n; i++)
                    h[i] = eplb_f32_to_f16(src[i]);
        }
        EPLB_CHECK(app_commit(a, take, w->path));
        src += n;
        ntok -= (int64_t)take;
    }
    return EPLB_OK;
}

static eplb_status_t push_ids(eplb_trace_writer_t *w, const int32_t *src, int64_t ntok)
{
    appender_t *a = &w->ids;
    size_t per = (size_t)w->L * (size_t)w->K;
    while (ntok > 0) {
        hsize_t room;
        unsigned char *dst = app_room(a, &room);
        hsize_t take = (hsize_t)ntok < room ? (hsize_t)ntok : room;
        size_t n = (size_t)take * per;
        if (w->E > 256)
            for (size_t i = 0; i < n; i++)
                ((uint16_t *)dst)[i] = (uint16_t)src[i];
        else
            for (size_t i = 0; i < n; i++)
                dst[i] = (uint8_t)src[i];
        EPLB_CHECK(app_commit(a, take, w->path));
        src += n;
        ntok -= (int64_t)take;
    }
    return EPLB_OK;
}

eplb_status_t eplb_trace_writer_append_step(eplb_trace_writer_t *w, int64_t ntok,
                                            const float *logits, const int32_t *topk_ids,
                                            const float *topk_weights, const int32_t *counts,
                                            const uint16_t *src_rank, uint8_t phase)
{
    if (!w)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "trace writer: NULL writer");
    EPLB_CHECK(check_step(w, ntok, logits, topk_ids, topk_weights, counts, src_rank, phase));
    eplb_status_t st = EPLB_OK;
    int64_t end = w->ntok + ntok;
    eplb_h5_lock();
    if (w->levels & EPLB_LEVEL_LOGITS)
        EPLB_CHECK_GOTO(push_logits(w, logits, ntok), st, out);
    if (w->levels & EPLB_LEVEL_TOPK)
        EPLB_CHECK_GOTO(push_ids(w, topk_ids, ntok), st, out);
    if (w->want_w)
        EPLB_CHECK_GOTO(app_push(&w->wts, topk_weights, (hsize_t)ntok, w->path), st, out);
    if (w->levels & EPLB_LEVEL_COUNTS)
        EPLB_CHECK_GOTO(app_push(&w->counts, counts, 1, w->path), st, out);
    if (w->want_src)
        EPLB_CHECK_GOTO(app_push(&w->src, src_rank, (hsize_t)ntok, w->path), st, out);
    if (w->want_phase)
        EPLB_CHECK_GOTO(app_push(&w->phase, &phase, 1, w->path), st, out);
    EPLB_CHECK_GOTO(app_push(&w->offs, &end, 1, w->path), st, out);
    w->ntok = end;
    w->nsteps++;
out:
    eplb_h5_unlock();
    return st;
}

eplb_status_t eplb_trace_writer_set_bias(eplb_trace_writer_t *w, const float *bias)
{
    if (!w || !bias)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "trace writer: NULL writer or bias");
    size_t n = (size_t)w->L * (size_t)w->E;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bias[i]))
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "%s: /router/e_score_correction_bias: layer %zu expert %zu: "
                                  "non-finite value",
                                  w->path, i / (size_t)w->E, i % (size_t)w->E);
    if (!w->bias && !(w->bias = malloc(n * sizeof(float))))
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", w->path);
    memcpy(w->bias, bias, n * sizeof(float));
    return EPLB_OK;
}

static eplb_status_t write_bias(eplb_trace_writer_t *w)
{
    eplb_status_t st = EPLB_OK;
    hsize_t dims[2] = {(hsize_t)w->L, (hsize_t)w->E};
    hid_t grp = ensure_group(w->file, "/router");
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (grp < 0 || sp < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ||
        (w->bias_d = H5Dcreate2(w->file, "/router/e_score_correction_bias", H5T_IEEE_F32LE, sp,
                                H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
        H5Dwrite(w->bias_d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->bias) < 0)
        st = eplb_h5_fail(EPLB_ERR_IO, w->path, "/router/e_score_correction_bias",
                          "cannot write dataset");
    eplb_h5_close(&dcpl);
    eplb_h5_close(&sp);
    eplb_h5_close(&grp);
    return st;
}

eplb_status_t eplb_trace_writer_finish(eplb_trace_writer_t *w)
{
    if (!w)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "trace writer: NULL writer");
    eplb_status_t st = EPLB_OK;
    eplb_h5_lock();
    if (w->nsteps == 0) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: trace writer: no steps appended",
                            w->path);
        goto out;
    }
    appender_t *apps[] = {&w->offs, &w->phase, &w->src, &w->logits,
                          &w->ids,  &w->wts,   &w->counts};
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++)
        EPLB_CHECK_GOTO(app_flush(apps[i], w->path), st, out);
    if (w->bias)
        EPLB_CHECK_GOTO(write_bias(w), st, out);
    /* Flush while everything is still open: a write that fails here leaves
     * the file to writer_free, which discards it safely; closing a dataset
     * or the file whose flush fails cannot be undone (see h5util.h). */
    if (H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0) {
        st = eplb_h5_fail(EPLB_ERR_IO, w->path, NULL, "cannot flush file");
        goto out;
    }
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++)
        app_close(apps[i]);
    eplb_h5_close(&w->bias_d);
    EPLB_CHECK_GOTO(eplb_h5_file_close_all(&w->file, w->path), st, out);
    st = eplb_tmp_rename_into_place(w->tmp, w->path);
out:
    writer_free(w, st != EPLB_OK);
    eplb_h5_unlock();
    return st;
}

void eplb_trace_writer_abort(eplb_trace_writer_t *w)
{
    if (!w)
        return;
    eplb_h5_lock();
    writer_free(w, 1);
    eplb_h5_unlock();
}
