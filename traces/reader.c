/* reader.c - open and validate a schema v1 trace; streaming range reads.
 *
 * eplb_trace_open checks everything that needs no bulk data: the file is
 * HDF5, the version, every root attribute, the datasets' ranks, types and
 * shapes against the attributes and /steps/token_offset (read whole: it is
 * 8 bytes a step, at most EPLB_TRACE_MAX_STEPS of them), the storage of
 * every dataset (no virtual or external storage, no external links, chunk
 * sizes within bounds) and the size limits of trace.h.  Range reads select
 * a hyperslab and check values as they go (NaN/Inf logits, ids out of
 * range, negative counts, a layer's counts summing to more than top_k x the
 * step's tokens). */
#include "trace_impl.h"

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
#include "pool.h"

#define CACHE_MAX_BYTES (64u << 20)

static const char *const N_OFFS = "/steps/token_offset", *const N_PHASE = "/steps/phase",
                         *const N_SRC = "/tokens/src_rank", *const N_LOGITS = "/router/logits",
                         *const N_BIAS = "/router/e_score_correction_bias",
                         *const N_IDS = "/router/topk_ids", *const N_WTS = "/router/topk_weights",
                         *const N_COUNTS = "/load/counts";

static eplb_status_t read_phase_locked(const eplb_trace_t *tr, uint8_t *phase,
                                       int64_t step_begin, int64_t step_end);

static void trace_free(eplb_trace_t *tr)
{
    hid_t *ids[] = {&tr->d_logits, &tr->d_ids,   &tr->d_wts,        &tr->d_counts,
                    &tr->d_bias,   &tr->d_phase, &tr->d_src,        &tr->logits_mtype,
                    &tr->ids_mtype};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        eplb_h5_close(ids[i]);
    eplb_h5_close(&tr->file);
    free(tr->info.model_config);
    free(tr->offsets);
    free(tr->path);
    eplb_trace_bufs_free(tr->bufs);
    free(tr);
}

/* ---- attributes --------------------------------------------------------- */

static eplb_status_t int_attr(int *out, hid_t f, const char *path, const char *name, int64_t lo,
                              int64_t hi)
{
    int64_t v;
    EPLB_CHECK(eplb_h5_attr_read_int(&v, f, name, path));
    if (v < lo || v > hi)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute '%s' = %lld is outside [%lld, %lld]", path,
                              name, (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return EPLB_OK;
}

/* A string attribute into dst[cap]: one that does not fit is a format
 * error (it was cut silently), except where `cut` allows it (the
 * informational source), which then ends in "...". */
static eplb_status_t str_attr(char *dst, size_t cap, hid_t f, const char *path,
                              const char *name, int cut)
{
    char *s = NULL;
    EPLB_CHECK(eplb_h5_attr_read_str(&s, f, name, path));
    const size_t n = strlen(s);
    if (n >= cap && !cut) {
        free(s);
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute '%s' is %zu bytes long; at most %zu", path,
                              name, n, cap - 1);
    }
    if (n >= cap)
        snprintf(dst, cap, "%.*s...", (int)(cap - 4), s);
    else
        snprintf(dst, cap, "%s", s);
    free(s);
    return EPLB_OK;
}

static eplb_status_t read_attrs(eplb_trace_t *tr)
{
    hid_t f = tr->file;
    const char *p = tr->path;
    eplb_trace_info_t *in = &tr->info;
    eplb_route_cfg_t *r = &in->route;
    int64_t version;
    EPLB_CHECK(eplb_h5_attr_read_int(&version, f, "eplb_trace_version", p));
    if (version != EPLB_TRACE_VERSION)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute 'eplb_trace_version' = %lld; this reader "
                              "supports version %d",
                              p, (long long)version, EPLB_TRACE_VERSION);
    in->version = (int)version;
    EPLB_CHECK(str_attr(in->model, sizeof in->model, f, p, "model", 0));
    EPLB_CHECK(int_attr(&in->num_layers, f, p, "num_layers", 1, EPLB_TRACE_MAX_LAYERS));
    EPLB_CHECK(int_attr(&r->num_experts, f, p, "num_experts", 1, EPLB_MAX_EXPERTS));
    EPLB_CHECK(int_attr(&r->top_k, f, p, "top_k", 1,
                        r->num_experts < EPLB_MAX_TOPK ? r->num_experts : EPLB_MAX_TOPK));
    char scoring[32];
    EPLB_CHECK(str_attr(scoring, sizeof scoring, f, p, "scoring", 0));
    if (!strcmp(scoring, "softmax"))
        r->scoring = EPLB_SCORING_SOFTMAX;
    else if (!strcmp(scoring, "sigmoid"))
        r->scoring = EPLB_SCORING_SIGMOID;
    else
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute 'scoring' = '%s'; expected softmax or sigmoid",
                              p, scoring);
    EPLB_CHECK(int_attr(&r->num_groups, f, p, "num_groups", 1, EPLB_MAX_GROUPS));
    if (r->num_experts % r->num_groups)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute 'num_groups' = %d does not divide "
                              "num_experts = %d",
                              p, r->num_groups, r->num_experts);
    EPLB_CHECK(int_attr(&r->topk_groups, f, p, "topk_groups", 1, r->num_groups));
    /* top_k within the experts of the kept groups (the routing needs K of
     * them); topk-only traces are never routed but their ids are meant
     * to come from this config, so the same rule */
    const int kept = r->topk_groups * (r->num_experts / r->num_groups);
    if (r->top_k > kept)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute 'top_k' = %d exceeds the %d experts of the "
                              "kept groups (topk_groups = %d of num_groups = %d, num_experts "
                              "= %d)",
                              p, r->top_k, kept, r->topk_groups, r->num_groups, r->num_experts);
    EPLB_CHECK(int_attr(&r->renormalize, f, p, "renormalize", 0, 1));
    double scale;
    EPLB_CHECK(eplb_h5_attr_read_double(&scale, f, "routed_scaling_factor", p));
    /* checked as the float it is used as: 1e39 became Inf and 1e-320 0 */
    const float fscale = fabs(scale) <= FLT_MAX ? (float)scale : (float)INFINITY;
    if (!(fscale > 0) || !isfinite(fscale))
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute 'routed_scaling_factor' = %g; expected a "
                              "finite number > 0 as a float32 (%g .. %g)",
                              p, scale, (double)FLT_TRUE_MIN, (double)FLT_MAX);
    r->routed_scaling_factor = fscale;
    EPLB_CHECK(str_attr(in->source, sizeof in->source, f, p, "source", 1));
    /* an attribute HDF5 cannot decode makes the look-up fail: an error,
     * not an absent model_config (it was taken as absent, silently) */
    int e = eplb_h5_attr_exists(f, "model_config");
    if (e < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, p, NULL,
                            "cannot look up root attribute 'model_config'");
    if (e > 0)
        EPLB_CHECK(eplb_h5_attr_read_str(&in->model_config, f, "model_config", p));
    return EPLB_OK;
}

/* ---- datasets ----------------------------------------------------------- */

static void fmt_shape(char *buf, size_t cap, int rank, const hsize_t *d)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? ", " : "", (unsigned long long)d[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

/* a * b, or UINT64_MAX where that overflows */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* The storage HDF5 reads from: compact, contiguous or chunked in this
 * file.  A virtual dataset reads other datasets (one mapped onto itself
 * overflowed the stack in H5Dread, SIGSEGV; one whose source is missing
 * read as zeros), and external raw storage reads any file of the host
 * (a short one zero-padded, a FIFO blocking for ever). */
static eplb_status_t check_storage(const eplb_trace_t *tr, hid_t pl, const char *name)
{
    H5D_layout_t lay = H5Pget_layout(pl);
    int next = H5Pget_external_count(pl);
    H5Eclear2(H5E_DEFAULT);
    if (lay != H5D_COMPACT && lay != H5D_CONTIGUOUS && lay != H5D_CHUNKED)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %s: %s storage layout; a trace's datasets must be compact, "
                              "contiguous or chunked",
                              tr->path, name, lay == H5D_VIRTUAL ? "virtual (VDS)" : "unknown");
    if (next != 0)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %s: raw data in external files (%d); a trace keeps its data "
                              "in the file itself",
                              tr->path, name, next);
    return EPLB_OK;
}

/* A chunked layout HDF5 could have written and that reads in bounded time
 * and memory: every chunk dimension at least 1 and at most the dimension's
 * fixed maximum (unlimited ones aside; a corrupt chunk dimension past the
 * dataset's made H5Dread crash, SIGSEGV, in HDF5 1.10: the tenth session's
 * sweep), and a chunk of EPLB_TRACE_CHUNK_MIN_BYTES (4 KiB) to
 * EPLB_TRACE_CHUNK_MAX_BYTES (256 MiB).  Chunks of one byte made HDF5
 * spend 18 s and 8 GB in its per-chunk bookkeeping for a 1.3 MB dataset,
 * and one chunk of 3.6 GB is inflated whole for any read of it.  Smaller
 * chunks cost little where there are few of them (the tests write small
 * traces in chunks of a few rows; h5py gives a dataset created from one row
 * with an unlimited first dimension chunks of one row, 8 bytes a step for
 * token_offset): at most EPLB_TRACE_SMALL_CHUNKS_MAX (2^17) in the extent,
 * ~2 s and ~0.6 GB of HDF5's bookkeeping at worst (65,536 chunks of 8
 * bytes: 0.99 s, 280 MB).  The layout message is read at open, so it is
 * checked there.  *chunk_bytes: a chunk's bytes (0 when not chunked). */
static eplb_status_t check_chunks(uint64_t *chunk_bytes, const eplb_trace_t *tr, hid_t d,
                                  hid_t pl, const char *name)
{
    *chunk_bytes = 0;
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    hsize_t dims[8], maxd[8], cd[8];
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r >= 0 && r <= 8)
        r = H5Sget_simple_extent_dims(sp, dims, maxd);
    const int chunked = H5Pget_layout(pl) == H5D_CHUNKED;
    const int cr = chunked && r >= 0 && r <= 8 ? H5Pget_chunk(pl, 8, cd) : 0;
    const size_t es = t >= 0 ? H5Tget_size(t) : 0;
    eplb_h5_close(&sp);
    eplb_h5_close(&t);
    H5Eclear2(H5E_DEFAULT);
    if (chunked && r > 8) /* a trace's datasets have rank 1 to 3 */
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: a chunked dataset of rank %d", tr->path,
                              name, r);
    if (!chunked || r < 0)
        return EPLB_OK; /* contiguous or compact: no chunks (shape errors come later) */
    if (cr != r)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: chunk of rank %d for a dataset of rank %d",
                              tr->path, name, cr, r);
    uint64_t bytes = es;
    for (int i = 0; i < r; i++) {
        if (cd[i] == 0 || (maxd[i] != H5S_UNLIMITED && cd[i] > maxd[i]))
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: %s: chunk dimension %d is %llu, outside [1, %llu] (corrupt "
                                  "layout?)",
                                  tr->path, name, i, (unsigned long long)cd[i],
                                  (unsigned long long)maxd[i]);
        bytes = mul_sat(bytes, cd[i]);
    }
    const uint64_t slots = eplb_h5_chunk_slots(r, dims, cd);
    char shape[160];
    fmt_shape(shape, sizeof shape, r, cd);
    if (bytes > EPLB_TRACE_CHUNK_MAX_BYTES)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %s: chunks of %s elements are %llu bytes; at most %llu (256 "
                              "MiB: a read inflates a whole chunk)",
                              tr->path, name, shape, (unsigned long long)bytes,
                              (unsigned long long)EPLB_TRACE_CHUNK_MAX_BYTES);
    if (bytes < EPLB_TRACE_CHUNK_MIN_BYTES && slots > EPLB_TRACE_SMALL_CHUNKS_MAX)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %s: %llu chunks of %s elements, %llu bytes each; chunks "
                              "under %llu bytes (4 KiB) only in datasets of at most %llu "
                              "chunks (HDF5 spends time and memory per chunk)",
                              tr->path, name, (unsigned long long)slots, shape,
                              (unsigned long long)bytes,
                              (unsigned long long)EPLB_TRACE_CHUNK_MIN_BYTES,
                              (unsigned long long)EPLB_TRACE_SMALL_CHUNKS_MAX);
    *chunk_bytes = bytes;
    return EPLB_OK;
}

/* Every element of dataset d's extent written: a chunked dataset with
 * every chunk of its extent allocated, a contiguous one with its storage
 * allocated.  HDF5 reads what was never written as the fill value (0), so
 * a trace whose writer extended a dataset and stopped before writing it
 * (an unfinished recording) would replay as routing every token to expert
 * 0, and a 10 KB file could declare 2^39 such tokens for `run` to walk
 * through.  (An allocated chunk holds the fill value only where its writer
 * allocated chunks early, H5D_ALLOC_TIME_EARLY, which a trace writer has
 * no reason to do.)  The count walks the chunk index, allocated chunks
 * only (the probe has walked it first in a child).  Run after the shape
 * and size checks, whose messages say more. */
static eplb_status_t check_written(const eplb_trace_t *tr, hid_t d, const char *name)
{
    if (d < 0)
        return EPLB_OK;
    hid_t pl = H5Dget_create_plist(d), sp = H5Dget_space(d);
    hsize_t dims[8], cd[8];
    const int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    const H5D_layout_t lay = pl >= 0 ? H5Pget_layout(pl) : H5D_LAYOUT_ERROR;
    eplb_status_t st = EPLB_OK;
    uint64_t slots = 1, nalloc = 0;
    if (r < 0 || r > 8 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
        lay == H5D_LAYOUT_ERROR) {
        st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read the storage layout");
        goto out;
    }
    if (lay == H5D_CHUNKED) {
        if (H5Pget_chunk(pl, r, cd) != r) { /* checked at open: cannot fail */
            st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read the chunk shape");
            goto out;
        }
        slots = eplb_h5_chunk_slots(r, dims, cd);
#if H5_VERSION_GE(1, 10, 5)
        /* the file space, not H5S_ALL: HDF5 1.10 refuses H5S_ALL here
         * ("invalid dataspace identifier"), its documentation aside */
        hsize_t n = 0;
        if (slots > 0 && H5Dget_num_chunks(d, sp, &n) < 0) {
            st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read the chunk index");
            goto out;
        }
        nalloc = slots > 0 ? (uint64_t)n : 0;
#else
        nalloc = slots; /* no count without a walk over every slot */
#endif
        if (nalloc < slots)
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: %s: %llu of its %llu chunks were never written (no storage "
                                "allocated; HDF5 would read them as zeros): an unfinished or "
                                "truncated trace",
                                tr->path, name, (unsigned long long)(slots - nalloc),
                                (unsigned long long)slots);
    } else if (lay == H5D_CONTIGUOUS) {
        for (int i = 0; i < r; i++)
            slots = mul_sat(slots, dims[i]);
        H5D_space_status_t ss = H5D_SPACE_STATUS_ERROR;
        if (H5Dget_space_status(d, &ss) < 0)
            st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read the storage status");
        else if (slots > 0 && ss != H5D_SPACE_STATUS_ALLOCATED)
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: %s: its data were never written (no storage allocated; "
                                "HDF5 would read them as zeros): an unfinished or truncated "
                                "trace",
                                tr->path, name);
    } /* compact: the data are in the object header */
out:
    eplb_h5_close(&pl);
    eplb_h5_close(&sp);
    H5Eclear2(H5E_DEFAULT);
    return st;
}

/* Open dataset `name` if present (*d stays invalid if absent), after the
 * links to it, its storage and its chunks passed the checks above, with a
 * chunk cache that holds two chunks, so that consecutive range reads that
 * share a chunk inflate it once. */
static eplb_status_t open_dataset(hid_t *d, const eplb_trace_t *tr, const char *name)
{
    int exists = 0;
    EPLB_CHECK(eplb_h5_links_check(&exists, tr->file, name, tr->path));
    if (exists < 0)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %s is a link that leads nowhere (dangling soft link)",
                              tr->path, name);
    if (!exists)
        return EPLB_OK;
    hid_t ds = H5Dopen2(tr->file, name, H5P_DEFAULT);
    if (ds < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot open dataset");
    hid_t dcpl = H5Dget_create_plist(ds), type = H5Dget_type(ds), dapl = H5I_INVALID_HID;
    eplb_status_t st = EPLB_OK;
    if (dcpl < 0 || type < 0) {
        st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read the storage layout");
        goto out;
    }
    EPLB_CHECK_GOTO(check_storage(tr, dcpl, name), st, out);
    uint64_t bytes = 0; /* a chunk's, at most 256 MiB: checked */
    EPLB_CHECK_GOTO(check_chunks(&bytes, tr, ds, dcpl, name), st, out);
    if (bytes > (1u << 20) / 2) {
        size_t cache = 2 * (size_t)bytes + (1u << 16);
        if (cache > CACHE_MAX_BYTES)
            cache = CACHE_MAX_BYTES;
        dapl = H5Pcreate(H5P_DATASET_ACCESS);
        /* w0 = 1: chunks read whole are evicted first (streaming). */
        if (dapl < 0 || H5Pset_chunk_cache(dapl, 521, cache, 1.0) < 0) {
            st = eplb_h5_fail(EPLB_ERR_INTERNAL, tr->path, name, "cannot size chunk cache");
            goto out;
        }
        H5Dclose(ds);
        ds = H5Dopen2(tr->file, name, dapl);
        if (ds < 0) {
            st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot open dataset");
            goto out;
        }
    }
out:
    eplb_h5_close(&dapl);
    eplb_h5_close(&dcpl);
    eplb_h5_close(&type);
    if (st != EPLB_OK) {
        eplb_h5_close(&ds);
        return st;
    }
    *d = ds;
    return EPLB_OK;
}

/* Check rank, shape and type class of d against want[rank] (its storage
 * was checked by open_dataset). `why` says where the expected shape comes
 * from. */
static eplb_status_t check_dataset(const eplb_trace_t *tr, hid_t d, const char *name, int rank,
                                   const hsize_t *want, H5T_class_t cls, const char *why)
{
    hsize_t dims[32]; /* H5S_MAX_RANK */
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r >= 0 && r <= 32)
        r = H5Sget_simple_extent_dims(sp, dims, NULL);
    else
        r = -1;
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    eplb_h5_close(&sp);
    eplb_h5_close(&t);
    if (r < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read shape");
    char got[160], exp[160];
    fmt_shape(got, sizeof got, r > 8 ? 8 : r, dims);
    fmt_shape(exp, sizeof exp, rank, want);
    int same = r == rank;
    for (int i = 0; same && i < rank; i++)
        same = dims[i] == want[i];
    if (!same)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %s has shape %s but %s %s", tr->path, name, got, why, exp);
    if (c != cls)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: element type is not %s", tr->path,
                              name, cls == H5T_FLOAT ? "a float" : "an integer");
    return EPLB_OK;
}

static eplb_status_t read_offsets(eplb_trace_t *tr)
{
    const char *p = tr->path;
    hid_t d = H5I_INVALID_HID;
    EPLB_CHECK(open_dataset(&d, tr, N_OFFS));
    if (d < 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: missing dataset %s", p, N_OFFS);
    eplb_status_t st = EPLB_OK;
    hsize_t n = 0;
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r == 1)
        H5Sget_simple_extent_dims(sp, &n, NULL);
    if (r != 1 || H5Tget_class(t) != H5T_INTEGER) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: %s must be a 1-d integer dataset [S+1]", p,
                            N_OFFS);
        goto out;
    }
    if (n < 2) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: %s has %llu entries: the trace has no steps",
                            p, N_OFFS, (unsigned long long)n);
        goto out;
    }
    /* before it is read whole (an unwritten one of 2^29 entries took 4 GB) */
    if (n - 1 > (hsize_t)EPLB_TRACE_MAX_STEPS) {
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            "%s: %s has %llu entries: %llu steps; at most %lld (2^26)", p,
                            N_OFFS, (unsigned long long)n, (unsigned long long)(n - 1),
                            (long long)EPLB_TRACE_MAX_STEPS);
        goto out;
    }
    EPLB_CHECK_GOTO(check_written(tr, d, N_OFFS), st, out);
    tr->offsets = malloc(n * sizeof(int64_t));
    EPLB_ALLOC_GOTO(tr->offsets, st, out);
    if (H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tr->offsets) < 0) {
        st = eplb_h5_fail(EPLB_ERR_FORMAT, p, N_OFFS, "cannot read");
        goto out;
    }
    if (tr->offsets[0] != 0) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: %s[0] = %lld; must be 0", p, N_OFFS,
                            (long long)tr->offsets[0]);
        goto out;
    }
    for (hsize_t i = 1; i < n; i++)
        if (tr->offsets[i] < tr->offsets[i - 1]) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: %s is decreasing at index %llu: %lld after %lld", p,
                                N_OFFS, (unsigned long long)i, (long long)tr->offsets[i],
                                (long long)tr->offsets[i - 1]);
            goto out;
        }
    if (tr->offsets[n - 1] > EPLB_TRACE_MAX_TOKENS) {
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            "%s: %s: T = token_offset[%llu] = %lld tokens; at most %lld (2^39)",
                            p, N_OFFS, (unsigned long long)(n - 1),
                            (long long)tr->offsets[n - 1], (long long)EPLB_TRACE_MAX_TOKENS);
        goto out;
    }
    tr->info.num_steps = (int64_t)n - 1;
    tr->info.num_tokens = tr->offsets[n - 1];
out:
    eplb_h5_close(&sp);
    eplb_h5_close(&t);
    eplb_h5_close(&d);
    return st;
}

static eplb_status_t open_datasets(eplb_trace_t *tr)
{
    eplb_trace_info_t *in = &tr->info;
    const char *p = tr->path;
    hsize_t T = (hsize_t)in->num_tokens, S = (hsize_t)in->num_steps;
    hsize_t L = (hsize_t)in->num_layers, E = (hsize_t)in->route.num_experts,
            K = (hsize_t)in->route.top_k;
    const char *tle = "num_layers and num_experts and /steps/token_offset (T = last offset) "
                      "give";
    const char *tlk = "num_layers and top_k and /steps/token_offset (T = last offset) give";

    EPLB_CHECK(open_dataset(&tr->d_logits, tr, N_LOGITS));
    if (tr->d_logits >= 0) {
        hsize_t want[3] = {T, L, E};
        EPLB_CHECK(check_dataset(tr, tr->d_logits, N_LOGITS, 3, want, H5T_FLOAT, tle));
        hid_t ft = H5Dget_type(tr->d_logits);
        eplb_status_t st = eplb_h5_type_classify(&in->logits_dtype, ft, p, N_LOGITS);
        H5Tclose(ft);
        EPLB_CHECK(st);
        tr->logits_mtype = eplb_h5_type_logits(in->logits_dtype);
        if (tr->logits_mtype < 0)
            return eplb_h5_fail(EPLB_ERR_INTERNAL, p, N_LOGITS, "cannot build memory type");
        in->levels |= EPLB_LEVEL_LOGITS;
    }
    EPLB_CHECK(open_dataset(&tr->d_ids, tr, N_IDS));
    if (tr->d_ids >= 0) {
        hsize_t want[3] = {T, L, K};
        EPLB_CHECK(check_dataset(tr, tr->d_ids, N_IDS, 3, want, H5T_INTEGER, tlk));
        hid_t ft = H5Dget_type(tr->d_ids);
        tr->ids_mtype = H5Tget_native_type(ft, H5T_DIR_ASCEND);
        in->topk_id_bytes = (int)H5Tget_size(ft);
        H5Tclose(ft);
        if (tr->ids_mtype < 0)
            return eplb_h5_fail(EPLB_ERR_FORMAT, p, N_IDS, "unsupported integer type");
        in->levels |= EPLB_LEVEL_TOPK;
    }
    EPLB_CHECK(open_dataset(&tr->d_wts, tr, N_WTS));
    if (tr->d_wts >= 0) {
        hsize_t want[3] = {T, L, K};
        EPLB_CHECK(check_dataset(tr, tr->d_wts, N_WTS, 3, want, H5T_FLOAT, tlk));
        in->has_topk_weights = 1;
    }
    EPLB_CHECK(open_dataset(&tr->d_counts, tr, N_COUNTS));
    if (tr->d_counts >= 0) {
        hsize_t want[3] = {S, L, E};
        EPLB_CHECK(check_dataset(tr, tr->d_counts, N_COUNTS, 3, want, H5T_INTEGER,
                                 "num_layers, num_experts and /steps/token_offset (S+1 "
                                 "entries) give"));
        in->levels |= EPLB_LEVEL_COUNTS;
    }
    EPLB_CHECK(open_dataset(&tr->d_bias, tr, N_BIAS));
    if (tr->d_bias >= 0) {
        hsize_t want[2] = {L, E};
        EPLB_CHECK(check_dataset(tr, tr->d_bias, N_BIAS, 2, want, H5T_FLOAT,
                                 "num_layers and num_experts give"));
        in->has_bias = 1;
    }
    EPLB_CHECK(open_dataset(&tr->d_phase, tr, N_PHASE));
    if (tr->d_phase >= 0) {
        hsize_t want[1] = {S};
        EPLB_CHECK(check_dataset(tr, tr->d_phase, N_PHASE, 1, want, H5T_INTEGER,
                                 "/steps/token_offset (S+1 entries) gives"));
        in->has_phase = 1;
        /* the values too (one byte a step): a run reads them nowhere else,
         * and a bad one passed unnoticed */
        uint8_t *ph = malloc(S ? (size_t)S : 1);
        if (!ph)
            return eplb_error_set(EPLB_ERR_NOMEM, "%s: %s: out of memory", tr->path, N_PHASE);
        eplb_status_t pst = read_phase_locked(tr, ph, 0, (int64_t)S); /* lock held */
        free(ph);
        EPLB_CHECK(pst);
    }
    EPLB_CHECK(open_dataset(&tr->d_src, tr, N_SRC));
    if (tr->d_src >= 0) {
        hsize_t want[1] = {T};
        EPLB_CHECK(check_dataset(tr, tr->d_src, N_SRC, 1, want, H5T_INTEGER,
                                 "/steps/token_offset (T = last offset) gives"));
        in->has_src_rank = 1;
    }
    if (!in->levels)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: no data level: a trace needs at least one of %s, %s, %s", p,
                              N_LOGITS, N_IDS, N_COUNTS);
    return EPLB_OK;
}

/* Per-token data: the replay holds a whole step's top-k ids (tokens x L x K
 * int32), so one step's must fit in EPLB_TRACE_MAX_STEP_ID_BYTES (a 10 KB
 * file declaring one step of 1e7 unwritten tokens made `run` grow past
 * 17.9 GB).  Counts-only traces hold no per-token data. */
static eplb_status_t check_step_tokens(const eplb_trace_t *tr)
{
    const eplb_trace_info_t *in = &tr->info;
    if (!(in->levels & (EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK)))
        return EPLB_OK;
    const uint64_t per = (uint64_t)in->num_layers * (uint64_t)in->route.top_k * 4;
    const int64_t most = (int64_t)(EPLB_TRACE_MAX_STEP_ID_BYTES / per);
    for (int64_t s = 0; s < in->num_steps; s++) {
        const int64_t n = tr->offsets[s + 1] - tr->offsets[s];
        if (n > most)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: %s: step %lld has %lld tokens; at most %lld for %d "
                                  "layers x top-%d (a step's ids, tokens x layers x top_k x 4 "
                                  "bytes, must fit in 2 GiB)",
                                  tr->path, N_OFFS, (long long)s, (long long)n, (long long)most,
                                  in->num_layers, in->route.top_k);
    }
    return EPLB_OK;
}

static eplb_status_t open_locked(eplb_trace_t *tr, const char *path)
{
    htri_t is = H5Fis_hdf5(path);
    if (is == 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: not an HDF5 file", path);
    if (is < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, path, NULL,
                            "not an HDF5 file (cannot read its signature)");
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        eplb_h5_close(&fapl);
        return eplb_h5_fail(EPLB_ERR_INTERNAL, path, NULL, "cannot set up file access");
    }
    tr->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    /* (eplb_h5_close keeps the failed open's reason: H5Pclose had dropped
     * it, and with it the hint for a superblock version this build does
     * not know) */
    eplb_h5_close(&fapl);
    if (tr->file < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, path, NULL,
                            "cannot open as HDF5 (truncated or corrupt file?)");
    EPLB_CHECK(read_attrs(tr));
    EPLB_CHECK(read_offsets(tr));
    EPLB_CHECK(open_datasets(tr));
    EPLB_CHECK(check_step_tokens(tr));
    const struct {
        hid_t d;
        const char *name;
    } all[] = {{tr->d_logits, N_LOGITS}, {tr->d_ids, N_IDS},     {tr->d_wts, N_WTS},
               {tr->d_counts, N_COUNTS}, {tr->d_bias, N_BIAS},   {tr->d_phase, N_PHASE},
               {tr->d_src, N_SRC}};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        EPLB_CHECK(check_written(tr, all[i].d, all[i].name));
    return EPLB_OK;
}

eplb_status_t eplb_trace_open(eplb_trace_t **out, const char *path)
{
    if (!out || !path)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "trace open: NULL argument");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot open trace: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot open trace: is a directory", path);
    /* a FIFO would block the open below; devices are no traces either */
    if (!S_ISREG(sb.st_mode))
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot open trace: not a regular file", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot open trace: %s", path, strerror(errno));
    close(fd);
    EPLB_CHECK(eplb_trace_probe(path)); /* corrupt metadata that crashes HDF5 */

    eplb_trace_t *tr = calloc(1, sizeof *tr);
    if (!tr)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", path);
    hid_t *ids[] = {&tr->file,   &tr->d_logits, &tr->d_ids,   &tr->d_wts,
                    &tr->d_counts, &tr->d_bias, &tr->d_phase, &tr->d_src,
                    &tr->logits_mtype, &tr->ids_mtype};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        *ids[i] = H5I_INVALID_HID;
    tr->info.route = (eplb_route_cfg_t)EPLB_ROUTE_CFG_INIT;
    tr->bufs = eplb_trace_bufs_new();
    tr->path = strdup(path);
    if (!tr->path) {
        eplb_trace_bufs_free(tr->bufs);
        free(tr);
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", path);
    }
    eplb_h5_lock();
    eplb_status_t st = open_locked(tr, path);
    if (st != EPLB_OK)
        trace_free(tr);
    eplb_h5_unlock();
    if (st != EPLB_OK)
        return st;
    *out = tr;
    return EPLB_OK;
}

void eplb_trace_close(eplb_trace_t *tr)
{
    if (!tr)
        return;
    eplb_h5_lock();
    trace_free(tr);
    eplb_h5_unlock();
}

const eplb_trace_info_t *eplb_trace_info(const eplb_trace_t *tr) { return &tr->info; }
const char *eplb_trace_path(const eplb_trace_t *tr) { return tr->path; }
const int64_t *eplb_trace_token_offsets(const eplb_trace_t *tr) { return tr->offsets; }

/* ---- range reads -------------------------------------------------------- */

/* HDF5 converts integers of a wider file type by clamping them to the
 * memory type's range, silently (a count of 2^40 would read as 2^31-1).
 * This conversion callback makes such a read fail instead. */
static H5T_conv_ret_t conv_range_cb(H5T_conv_except_t e, hid_t src, hid_t dst, void *sbuf,
                                    void *dbuf, void *user)
{
    (void)src, (void)dst, (void)sbuf, (void)dbuf;
    if (e == H5T_CONV_EXCEPT_RANGE_HI || e == H5T_CONV_EXCEPT_RANGE_LOW) {
        *(int *)user = 1;
        return H5T_CONV_ABORT;
    }
    return H5T_CONV_UNHANDLED;
}

static const char *mtype_name(hid_t mtype)
{
    if (H5Tequal(mtype, H5T_NATIVE_INT32) > 0)
        return "int32";
    if (H5Tequal(mtype, H5T_NATIVE_UINT16) > 0)
        return "uint16";
    if (H5Tequal(mtype, H5T_NATIVE_UINT8) > 0)
        return "uint8";
    return "the reader's type";
}

/* Read rows [r0, r1) of d (all trailing dims) into buf as mtype. */
static eplb_status_t read_rows(const eplb_trace_t *tr, hid_t d, const char *name, hid_t mtype,
                               void *buf, int64_t r0, int64_t r1, int64_t nrows)
{
    if (d < 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: the trace has no dataset %s", tr->path,
                              name);
    if (r0 < 0 || r1 < r0 || r1 > nrows)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: %s: range [%lld, %lld) outside [0, %lld)", tr->path, name,
                              (long long)r0, (long long)r1, (long long)nrows);
    if (r1 == r0)
        return EPLB_OK;
    eplb_status_t st = EPLB_OK;
    hsize_t dims[3], start[3] = {0, 0, 0};
    hid_t fs = H5Dget_space(d), ms = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
    int rank = fs >= 0 ? H5Sget_simple_extent_dims(fs, dims, NULL) : -1;
    if (rank < 1 || rank > 3) {
        st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read shape");
        goto out;
    }
    start[0] = (hsize_t)r0;
    dims[0] = (hsize_t)(r1 - r0);
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL) < 0 ||
        (ms = H5Screate_simple(rank, dims, NULL)) < 0) {
        st = eplb_h5_fail(EPLB_ERR_INTERNAL, tr->path, name, "cannot select rows");
        goto out;
    }
    int overflow = 0;
    if (H5Tget_class(mtype) == H5T_INTEGER) {
        dxpl = H5Pcreate(H5P_DATASET_XFER);
        if (dxpl < 0 || H5Pset_type_conv_cb(dxpl, conv_range_cb, &overflow) < 0) {
            st = eplb_h5_fail(EPLB_ERR_INTERNAL, tr->path, name, "cannot set up the read");
            goto out;
        }
    }
    if (H5Dread(d, mtype, ms, fs, dxpl >= 0 ? dxpl : H5P_DEFAULT, buf) < 0) {
        if (overflow) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: %s: a value in rows [%lld, %lld) is outside the range "
                                "of %s", tr->path, name, (long long)r0, (long long)r1,
                                mtype_name(mtype));
        } else {
            char what[96];
            snprintf(what, sizeof what, "cannot read rows [%lld, %lld)", (long long)r0,
                     (long long)r1);
            st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, what);
        }
    }
out:
    eplb_h5_close(&fs);
    eplb_h5_close(&ms);
    if (dxpl >= 0)
        H5Pclose(dxpl);
    return st;
}

static int is_nonfinite(const void *buf, size_t i, eplb_dtype_t dt)
{
    if (dt == EPLB_DTYPE_F32) {
        uint32_t x;
        memcpy(&x, (const char *)buf + 4 * i, 4);
        return (x & 0x7f800000u) == 0x7f800000u;
    }
    uint16_t h = ((const uint16_t *)buf)[i];
    return dt == EPLB_DTYPE_F16 ? (h & 0x7c00u) == 0x7c00u : (h & 0x7f80u) == 0x7f80u;
}

eplb_status_t eplb_trace_read_logits_unchecked(const eplb_trace_t *tr, void *buf,
                                               int64_t tok_begin, int64_t tok_end)
{
    eplb_h5_lock();
    eplb_status_t st = read_rows(tr, tr->d_logits, N_LOGITS, tr->logits_mtype, buf, tok_begin,
                                 tok_end, tr->info.num_tokens);
    eplb_h5_unlock();
    return st;
}

eplb_status_t eplb_trace_read_logits(const eplb_trace_t *tr, void *buf, int64_t tok_begin,
                                     int64_t tok_end)
{
    EPLB_CHECK(eplb_trace_read_logits_unchecked(tr, buf, tok_begin, tok_end));
    return eplb_trace_check_logits(tr, buf, tok_begin, tok_end);
}

/* Scans in blocks of a constant length, without a branch per element, so
 * that the compiler vectorises them: a check element by element ran at ~3
 * GB/s on one core, and the replay checks every logit it decodes (on a
 * 1.5 GB trace, a single-threaded 0.5 s). */
#define FINITE_BLOCK 64

static int block_finite16(const uint16_t *h, uint16_t m)
{
    unsigned bad = 0;
    for (int i = 0; i < FINITE_BLOCK; i++)
        bad |= (h[i] & m) == m;
    return !bad;
}

static int block_finite32(const uint32_t *x)
{
    unsigned bad = 0;
    for (int i = 0; i < FINITE_BLOCK; i++)
        bad |= (x[i] & 0x7f800000u) == 0x7f800000u;
    return !bad;
}

size_t eplb_trace_first_nonfinite(const void *buf, size_t n, eplb_dtype_t dt)
{
    size_t i = 0;
    if (dt == EPLB_DTYPE_F32) {
        const uint32_t *x = buf;
        while (i + FINITE_BLOCK <= n && block_finite32(x + i))
            i += FINITE_BLOCK;
    } else {
        const uint16_t *h = buf;
        uint16_t m = dt == EPLB_DTYPE_F16 ? 0x7c00u : 0x7f80u;
        while (i + FINITE_BLOCK <= n && block_finite16(h + i, m))
            i += FINITE_BLOCK;
    }
    for (; i < n; i++) /* the block with one, or the tail */
        if (is_nonfinite(buf, i, dt))
            return i;
    return n;
}

eplb_status_t eplb_trace_check_logits(const eplb_trace_t *tr, const void *buf, int64_t tok_begin,
                                      int64_t tok_end)
{
    size_t per = (size_t)tr->info.num_layers * (size_t)tr->info.route.num_experts;
    size_t n = (size_t)(tok_end - tok_begin) * per;
    size_t i = eplb_trace_first_nonfinite(buf, n, tr->info.logits_dtype);
    if (i < n)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %s: token %lld layer %zu expert %zu: NaN or Inf logit",
                              tr->path, N_LOGITS, (long long)(tok_begin + (int64_t)(i / per)),
                              i % per / (size_t)tr->info.route.num_experts,
                              i % (size_t)tr->info.route.num_experts);
    return EPLB_OK;
}

/* The ids' value check, in parts of IDS_CHECK_ROWS rows of K (one token
 * and layer) on the process's helpers: every id in [0, E), and no expert
 * twice in a row (a top-k picks K different experts; a repeat would count
 * the token twice for it).  first[q]: the first bad row of part q, or
 * rows.  Branch-free within a row: the pairwise test of a DeepSeek-V3
 * row (K = 8) costs 28 compares, ~16 ns with a branch each on one core of
 * the build machine (0.2 s more for `info` on 12.2 M rows), less without. */
#define IDS_CHECK_ROWS ((size_t)1 << 16)

typedef struct {
    const int32_t *ids;
    size_t rows;
    int K, E, parts;
    size_t *first;
} ids_check_t;

static void ids_check_part(void *arg, int q)
{
    ids_check_t *c = arg;
    const size_t r0 = (size_t)q * IDS_CHECK_ROWS;
    const size_t r1 = r0 + IDS_CHECK_ROWS < c->rows ? r0 + IDS_CHECK_ROWS : c->rows;
    const int K = c->K;
    const uint32_t E = (uint32_t)c->E;
    c->first[q] = c->rows;
    for (size_t r = r0; r < r1; r++) {
        const int32_t *x = c->ids + r * (size_t)K;
        int bad = 0;
        for (int a = 0; a < K; a++) {
            bad |= (uint32_t)x[a] >= E;
            for (int b = 0; b < a; b++)
                bad |= x[a] == x[b];
        }
        if (bad) {
            c->first[q] = r;
            return;
        }
    }
}

eplb_status_t eplb_trace_read_topk(const eplb_trace_t *tr, int32_t *ids, float *weights,
                                   int64_t tok_begin, int64_t tok_end)
{
    eplb_h5_lock();
    eplb_status_t st = read_rows(tr, tr->d_ids, N_IDS, H5T_NATIVE_INT32, ids, tok_begin,
                                 tok_end, tr->info.num_tokens);
    if (st == EPLB_OK && weights && tr->d_wts >= 0)
        st = read_rows(tr, tr->d_wts, N_WTS, H5T_NATIVE_FLOAT, weights, tok_begin, tok_end,
                       tr->info.num_tokens);
    eplb_h5_unlock();
    if (st != EPLB_OK)
        return st;
    int L = tr->info.num_layers, K = tr->info.route.top_k, E = tr->info.route.num_experts;
    size_t per = (size_t)L * (size_t)K, n = (size_t)(tok_end - tok_begin) * per;
    /* the rows checked on all cores; the first bad one (the lowest) named */
    ids_check_t c = {ids, n / (size_t)K, K, E, 0, NULL};
    c.parts = (int)((c.rows + IDS_CHECK_ROWS - 1) / IDS_CHECK_ROWS);
    size_t stack_first[64];
    c.first = c.parts <= 64 ? stack_first : malloc(sizeof *c.first * (size_t)c.parts);
    if (!c.first)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: %s: out of memory", tr->path, N_IDS);
    eplb_pool_run(c.parts, eplb_num_threads(), ids_check_part, &c);
    size_t bad = c.rows;
    for (int q = 0; q < c.parts && bad == c.rows; q++)
        bad = c.first[q];
    if (c.first != stack_first)
        free(c.first);
    if (bad < c.rows) {
        const int32_t *x = ids + bad * (size_t)K;
        const long long tok = (long long)(tok_begin + (int64_t)(bad * (size_t)K / per));
        const size_t layer = bad % (size_t)L;
        for (int a = 0; a < K; a++)
            if (x[a] < 0 || x[a] >= E)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: %s: token %lld layer %zu: expert id %d outside "
                                      "[0, %d)",
                                      tr->path, N_IDS, tok, layer, x[a], E);
        for (int a = 1; a < K; a++)
            for (int b = 0; b < a; b++)
                if (x[a] == x[b])
                    return eplb_error_set(EPLB_ERR_FORMAT,
                                          "%s: %s: token %lld layer %zu: expert %d appears "
                                          "twice in the top-%d",
                                          tr->path, N_IDS, tok, layer, x[a], K);
    }
    if (weights && tr->d_wts >= 0)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(weights[i]))
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: %s: token %lld layer %zu: NaN or Inf weight",
                                      tr->path, N_WTS,
                                      (long long)(tok_begin + (int64_t)(i / per)),
                                      i % per / (size_t)K);
    return EPLB_OK;
}

eplb_status_t eplb_trace_counts_check(eplb_status_t code, const char *path, int64_t step,
                                      const int32_t *counts, int L, int E, int64_t top_k,
                                      int64_t tokens)
{
    /* Row by row: no count is negative, and the row sums to at most K x the
     * step's tokens, since each token picks at most K experts (less than
     * that is allowed: dropped tokens, imported run totals).  The sum (at
     * most 512 x 2^31) and the bound (at most 16 x 2^39) fit in int64. */
    const int64_t bound = top_k * tokens;
    for (int l = 0; l < L; l++) {
        const int32_t *x = counts + (size_t)l * (size_t)E;
        int64_t sum = 0;
        int32_t lo = 0;
        for (int e = 0; e < E; e++) {
            sum += x[e];
            lo = x[e] < lo ? x[e] : lo;
        }
        if (lo < 0)
            for (int e = 0; e < E; e++)
                if (x[e] < 0)
                    return eplb_error_set(code,
                                          "%s: %s: step %lld layer %d expert %d: negative "
                                          "count %d",
                                          path, N_COUNTS, (long long)step, l, e, x[e]);
        if (sum > bound)
            return eplb_error_set(code,
                                  "%s: %s: step %lld layer %d: counts sum to %lld, more than "
                                  "top_k x tokens = %lld x %lld = %lld (each token picks at "
                                  "most top_k experts; /steps/token_offset must give each "
                                  "step's tokens, for run totals at least the largest row / "
                                  "top_k)",
                                  path, N_COUNTS, (long long)step, l, (long long)sum,
                                  (long long)top_k, (long long)tokens, (long long)bound);
    }
    return EPLB_OK;
}

eplb_status_t eplb_trace_read_counts(const eplb_trace_t *tr, int32_t *counts,
                                     int64_t step_begin, int64_t step_end)
{
    eplb_h5_lock();
    eplb_status_t st = read_rows(tr, tr->d_counts, N_COUNTS, H5T_NATIVE_INT32, counts,
                                 step_begin, step_end, tr->info.num_steps);
    eplb_h5_unlock();
    if (st != EPLB_OK)
        return st;
    const int L = tr->info.num_layers, E = tr->info.route.num_experts;
    for (int64_t s = step_begin; s < step_end; s++)
        EPLB_CHECK(eplb_trace_counts_check(EPLB_ERR_FORMAT, tr->path, s,
                                           counts + (size_t)(s - step_begin) * L * E, L, E,
                                           tr->info.route.top_k,
                                           tr->offsets[s + 1] - tr->offsets[s]));
    return EPLB_OK;
}

eplb_status_t eplb_trace_read_bias(const eplb_trace_t *tr, float *bias)
{
    eplb_h5_lock();
    eplb_status_t st = read_rows(tr, tr->d_bias, N_BIAS, H5T_NATIVE_FLOAT, bias, 0,
                                 tr->info.num_layers, tr->info.num_layers);
    eplb_h5_unlock();
    if (st != EPLB_OK)
        return st;
    size_t n = (size_t)tr->info.num_layers * (size_t)tr->info.route.num_experts;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bias[i]))
            return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: layer %zu: NaN or Inf", tr->path,
                                  N_BIAS, i / (size_t)tr->info.route.num_experts);
    return EPLB_OK;
}

eplb_status_t eplb_trace_read_src_rank(const eplb_trace_t *tr, uint16_t *rank,
                                       int64_t tok_begin, int64_t tok_end)
{
    eplb_h5_lock();
    eplb_status_t st = read_rows(tr, tr->d_src, N_SRC, H5T_NATIVE_UINT16, rank, tok_begin,
                                 tok_end, tr->info.num_tokens);
    eplb_h5_unlock();
    return st;
}

/* The phases of steps [step_begin, step_end), each checked; the HDF5 lock
 * held by the caller. */
static eplb_status_t read_phase_locked(const eplb_trace_t *tr, uint8_t *phase,
                                       int64_t step_begin, int64_t step_end)
{
    EPLB_CHECK(read_rows(tr, tr->d_phase, N_PHASE, H5T_NATIVE_UINT8, phase, step_begin,
                         step_end, tr->info.num_steps));
    for (int64_t i = 0; i < step_end - step_begin; i++)
        if (phase[i] > 2)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: %s: step %lld: phase %u (expected 0, 1 or 2)", tr->path,
                                  N_PHASE, (long long)(step_begin + i), phase[i]);
    return EPLB_OK;
}

eplb_status_t eplb_trace_read_phase(const eplb_trace_t *tr, uint8_t *phase, int64_t step_begin,
                                    int64_t step_end)
{
    eplb_h5_lock();
    eplb_status_t st = read_phase_locked(tr, phase, step_begin, step_end);
    eplb_h5_unlock();
    return st;
}

/* ---- whole-dataset reads ------------------------------------------------ */

hid_t eplb_trace_bulk_dataset(const eplb_trace_t *tr, hid_t *mtype, const char **name)
{
    if (tr->d_logits >= 0) {
        *mtype = tr->logits_mtype;
        *name = N_LOGITS;
        return tr->d_logits;
    }
    *mtype = tr->ids_mtype;
    *name = N_IDS;
    return tr->d_ids;
}

size_t eplb_trace_raw_bytes(const eplb_trace_t *tr)
{
    /* below 2^62 with the limits of trace.h; saturated all the same */
    const eplb_trace_info_t *in = &tr->info;
    uint64_t rows = mul_sat((uint64_t)in->num_tokens, (uint64_t)in->num_layers), b = 0;
    if (in->levels & EPLB_LEVEL_LOGITS)
        b = mul_sat(mul_sat(rows, (uint64_t)in->route.num_experts),
                    eplb_dtype_size(in->logits_dtype));
    else if (in->levels & EPLB_LEVEL_TOPK)
        b = mul_sat(mul_sat(rows, (uint64_t)in->route.top_k), (uint64_t)in->topk_id_bytes);
    return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

eplb_status_t eplb_trace_read_all_serial(const eplb_trace_t *tr, void *buf)
{
    hid_t mt;
    const char *name;
    hid_t d = eplb_trace_bulk_dataset(tr, &mt, &name);
    if (d < 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: no %s or %s to read", tr->path, N_LOGITS,
                              N_IDS);
    eplb_status_t st = EPLB_OK;
    if (tr->info.num_tokens == 0)
        return EPLB_OK;
    /* A handle without a chunk cache.  HDF5 keeps the cache of the
     * dataset's first open (the trace's, two chunks) while that is open
     * and ignores this dapl; a read after an earlier one copies the chunks
     * still cached instead of inflating them (`bench io` reopens the trace
     * before each timed serial read). */
    eplb_h5_lock();
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS), d2 = H5I_INVALID_HID;
    if (dapl < 0 || H5Pset_chunk_cache(dapl, 0, 0, 1.0) < 0 ||
        (d2 = H5Dopen2(tr->file, name, dapl)) < 0)
        st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot open dataset");
    else if (H5Dread(d2, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, name, "cannot read");
    eplb_h5_close(&d2);
    eplb_h5_close(&dapl);
    eplb_h5_unlock();
    (void)d;
    return st;
}

eplb_status_t eplb_trace_dataset_sizes(const eplb_trace_t *tr, eplb_trace_dataset_size_t *out,
                                       int max, int *n)
{
    const struct { hid_t d; const char *name; } all[] = {
        {tr->d_logits, N_LOGITS}, {tr->d_ids, N_IDS},     {tr->d_wts, N_WTS},
        {tr->d_counts, N_COUNTS}, {tr->d_bias, N_BIAS},   {tr->d_phase, N_PHASE},
        {tr->d_src, N_SRC},
    };
    int k = 0;
    eplb_status_t st = EPLB_OK;
    eplb_h5_lock();
    for (size_t i = 0; i < sizeof all / sizeof all[0] && k < max; i++) {
        if (all[i].d < 0)
            continue;
        hid_t sp = H5Dget_space(all[i].d), t = H5Dget_type(all[i].d);
        hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        size_t es = t >= 0 ? H5Tget_size(t) : 0;
        eplb_h5_close(&sp);
        eplb_h5_close(&t);
        if (np < 0 || es == 0) {
            st = eplb_h5_fail(EPLB_ERR_FORMAT, tr->path, all[i].name, "cannot read shape");
            break;
        }
        out[k].name = all[i].name;
        out[k].stored = (uint64_t)H5Dget_storage_size(all[i].d);
        out[k].raw = mul_sat((uint64_t)np, es);
        k++;
    }
    eplb_h5_unlock();
    if (st == EPLB_OK)
        *n = k;
    return st;
}

int64_t eplb_trace_chunk_tokens(const eplb_trace_t *tr)
{
    hid_t mt;
    const char *name;
    hid_t d = eplb_trace_bulk_dataset(tr, &mt, &name);
    int64_t rows = 0;
    if (d < 0)
        return 0;
    eplb_h5_lock();
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t cd[8];
        if (H5Pget_chunk(dcpl, 8, cd) >= 1)
            rows = (int64_t)cd[0];
    }
    eplb_h5_close(&dcpl);
    H5Eclear2(H5E_DEFAULT);
    eplb_h5_unlock();
    return rows;
}
