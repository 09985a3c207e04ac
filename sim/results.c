/* results.c - results.h5: per-run time series, rebalance events and
 * placements, appended block by block (layout: docs/simulator.md). */
#include "results.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checks.h"
#include "h5util.h"
#include "sim_impl.h"
#include "tmpfile_guard.h"

/* 2: run groups leave out the attributes that do not apply (trigger, async,
 * chunk, window, interval of none runs; window, interval of once runs);
 * 3: gpu_tokens int64 (int32 wrapped past 2^31) */
#define RESULTS_VERSION 3

/* Every dataset stays open until unlocked_finish's file flush, the small
 * fixed ones too (pl0, plf): HDF5 holds a small contiguous dataset's data
 * in its sieve buffer until the dataset is flushed or closed, and a close
 * whose write fails was not seen (exit 0, the placement all zeros). */
typedef struct {
    hid_t grp, tok, bal, tim, ev, pl, plstep, pl0, plf;
    int D, P;
} h5run_t;

struct eplb_sim_h5 {
    char *path, *tmp;
    int guard; /* tmpfile_guard slot, -1 if none */
    hid_t file, runs_grp, ev_type, ev_ftype, gcpl;
    int L, nruns;
    h5run_t *run;
};

/* An interrupted run (SIGINT, SIGTERM, SIGHUP) removes its temporary
 * results file before it dies, so that an out directory holds complete
 * files only (src/tmpfile_guard.c; disarmed by finish / abort). */

/* "PATH: WHAT: cannot write (hdf5: reason)": the reason carries the errno
 * text of a failed write (No space left on device, File too large). */
static eplb_status_t h5err(const eplb_sim_h5_t *h, const char *what)
{
    return eplb_h5_fail(EPLB_ERR_IO, h->path, what, "cannot write");
}

static eplb_status_t attr_str(const eplb_sim_h5_t *h, hid_t obj, const char *name,
                              const char *v)
{
    /* variable-length UTF-8: h5py reads it as str */
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, &v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return e < 0 ? h5err(h, name) : EPLB_OK;
}

static eplb_status_t attr_num(const eplb_sim_h5_t *h, hid_t obj, const char *name,
                              hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? h5err(h, name) : EPLB_OK;
}

static eplb_status_t attr_i64(const eplb_sim_h5_t *h, hid_t o, const char *n, int64_t v)
{
    return attr_num(h, o, n, H5T_NATIVE_INT64, &v);
}

static eplb_status_t attr_f64(const eplb_sim_h5_t *h, hid_t o, const char *n, double v)
{
    return attr_num(h, o, n, H5T_NATIVE_DOUBLE, &v);
}

/* Extendible dataset of rank r, first dimension 0 now, the rest fixed. */
static hid_t create_ext(hid_t loc, const char *name, hid_t type, int r,
                        const hsize_t *rest, hsize_t chunk0)
{
    hsize_t dims[4] = {0}, max[4] = {H5S_UNLIMITED}, chunk[4] = {chunk0};
    for (int i = 1; i < r; i++) {
        dims[i] = max[i] = rest[i - 1];
        chunk[i] = rest[i - 1] > 0 ? rest[i - 1] : 1;
    }
    hid_t sp = H5Screate_simple(r, dims, max);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, r, chunk);
    H5Pset_deflate(pl, 4);
    H5Pset_obj_track_times(pl, 0); /* same inputs, same bytes */
    hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    return d;
}

static int append(hid_t d, hid_t memtype, hsize_t n, const void *buf)
{
    if (n == 0)
        return 0;
    hid_t sp = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[4], start[4] = {0}, count[4];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    hsize_t old = dims[0];
    dims[0] += n;
    if (H5Dset_extent(d, dims) < 0)
        return -1;
    sp = H5Dget_space(d);
    start[0] = old;
    count[0] = n;
    for (int i = 1; i < r; i++)
        count[i] = dims[i];
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(r, count, NULL);
    herr_t e = H5Dwrite(d, memtype, ms, sp, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

/* Dataset name [L][P] of v into *d, left open (h5run_t). */
static eplb_status_t write_fixed(const eplb_sim_h5_t *h, hid_t loc, const char *name, int L, int P,
                                 const int32_t *v, hid_t *d)
{
    hsize_t dims[2] = {(hsize_t)L, (hsize_t)P};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(pl, 0);
    *d = H5Dcreate2(loc, name, H5T_STD_I32LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    herr_t e = *d < 0 ? -1 : H5Dwrite(*d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Sclose(sp);
    return e < 0 ? h5err(h, name) : EPLB_OK;
}

static hid_t event_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(eplb_sim_event_t));
#define F(name, type) H5Tinsert(t, #name, HOFFSET(eplb_sim_event_t, name), type)
    F(step, H5T_NATIVE_INT64);
    F(decided, H5T_NATIVE_INT64);
    F(win_begin, H5T_NATIVE_INT64);
    F(win_end, H5T_NATIVE_INT64);
    F(layer, H5T_NATIVE_INT32);
    F(moved, H5T_NATIVE_INT32);
    F(local, H5T_NATIVE_INT32);
    F(intra, H5T_NATIVE_INT32);
    F(inter, H5T_NATIVE_INT32);
    F(bytes, H5T_NATIVE_INT64);
    F(transfer_s, H5T_NATIVE_DOUBLE);
    F(stall_s, H5T_NATIVE_DOUBLE);
    F(policy_s, H5T_NATIVE_DOUBLE);
#undef F
    return t;
}

static void unlocked_abort(eplb_sim_h5_t *h);

static eplb_status_t unlocked_create(eplb_sim_h5_t **out, const char *path, int L, int E,
                                 int K, int64_t S, const char *model,
                                 const char *config_json, int nruns)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    eplb_status_t st = EPLB_OK;
    eplb_sim_h5_t *h = calloc(1, sizeof *h);
    EPLB_ALLOC_GOTO(h, st, err0);
    h->file = h->runs_grp = h->ev_type = h->ev_ftype = h->gcpl = -1;
    h->guard = -1;
    h->L = L;
    h->nruns = nruns;
    h->path = strdup(path);
    h->tmp = malloc(strlen(path) + 32);
    h->run = calloc((size_t)nruns, sizeof *h->run);
    EPLB_ALLOC_GOTO(h->path, st, err);
    EPLB_ALLOC_GOTO(h->tmp, st, err);
    EPLB_ALLOC_GOTO(h->run, st, err);
    for (int i = 0; i < nruns; i++) {
        h5run_t *r = &h->run[i];
        r->grp = r->tok = r->bal = r->tim = r->ev = r->pl = r->plstep = r->pl0 = r->plf = -1;
    }
    eplb_tmp_name(h->tmp, strlen(path) + 32, path);
    h->guard = eplb_tmp_guard_arm(h->tmp);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0); /* root group: no timestamps either */
    h->file = H5Fcreate(h->tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (h->file < 0) {
        st = eplb_h5_fail(EPLB_ERR_IO, h->tmp, NULL, "cannot create file");
        goto err;
    }
    h->ev_type = event_type();
    h->ev_ftype = H5Tcopy(h->ev_type);
    H5Tpack(h->ev_ftype); /* no padding in the file */
    EPLB_CHECK_GOTO(attr_i64(h, h->file, "eplb_results_version", RESULTS_VERSION), st, err);
    EPLB_CHECK_GOTO(attr_str(h, h->file, "model", model ? model : ""), st, err);
    EPLB_CHECK_GOTO(attr_i64(h, h->file, "num_layers", L), st, err);
    EPLB_CHECK_GOTO(attr_i64(h, h->file, "num_experts", E), st, err);
    EPLB_CHECK_GOTO(attr_i64(h, h->file, "top_k", K), st, err);
    EPLB_CHECK_GOTO(attr_i64(h, h->file, "num_steps", S), st, err);
    EPLB_CHECK_GOTO(attr_i64(h, h->file, "num_runs", nruns), st, err);
    EPLB_CHECK_GOTO(attr_str(h, h->file, "config", config_json ? config_json : "{}"),
                    st, err);
    h->gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(h->gcpl, 0);
    h->runs_grp = H5Gcreate2(h->file, "runs", H5P_DEFAULT, h->gcpl, H5P_DEFAULT);
    if (h->runs_grp < 0) {
        st = h5err(h, "/runs");
        goto err;
    }
    *out = h;
    return EPLB_OK;
err:
    unlocked_abort(h);
err0:
    return st;
}

static eplb_status_t unlocked_add_run(eplb_sim_h5_t *h, int idx,
                                  const eplb_sim_run_cfg_t *cfg, const char *label,
                                  const char *policy, const int32_t *placement)
{
    h5run_t *r = &h->run[idx];
    char name[32];
    snprintf(name, sizeof name, "%03d", idx);
    r->grp = H5Gcreate2(h->runs_grp, name, H5P_DEFAULT, h->gcpl, H5P_DEFAULT);
    if (r->grp < 0)
        return h5err(h, "run group");
    r->D = cfg->num_gpus;
    r->P = cfg->num_slots;
    const eplb_trigger_t *t = &cfg->trig;
    /* HDF5 has no null: what does not apply (sim_impl.h) is left out */
    int trig = sim_run_has_trigger(policy), wi = sim_run_has_window(policy, t);
    EPLB_CHECK(attr_str(h, r->grp, "label", label));
    EPLB_CHECK(attr_str(h, r->grp, "policy", policy));
    if (trig)
        EPLB_CHECK(attr_str(h, r->grp, "trigger", eplb_sim_trigger_name(t->kind)));
    EPLB_CHECK(attr_i64(h, r->grp, "gpus", cfg->num_gpus));
    EPLB_CHECK(attr_i64(h, r->grp, "nodes", cfg->num_nodes));
    EPLB_CHECK(attr_i64(h, r->grp, "replicas", cfg->num_slots));
    if (wi) {
        EPLB_CHECK(attr_i64(h, r->grp, "window", t->window));
        EPLB_CHECK(attr_i64(h, r->grp, "interval", t->interval));
    }
    if (trig) {
        EPLB_CHECK(attr_str(h, r->grp, "async",
                            t->async == EPLB_ASYNC_OFF      ? "off"
                            : t->async == EPLB_ASYNC_LAYERS ? "layers"
                                                            : "chunk"));
        EPLB_CHECK(attr_i64(h, r->grp, "chunk", t->chunk));
    }
    hsize_t tokdims[2] = {(hsize_t)h->L, (hsize_t)r->D};
    hsize_t baldims[1] = {(hsize_t)h->L};
    hsize_t timdims[1] = {4};
    hsize_t pldims[2] = {(hsize_t)h->L, (hsize_t)r->P};
    r->tok = create_ext(r->grp, "gpu_tokens", H5T_STD_I64LE, 3, tokdims, 64);
    r->bal = create_ext(r->grp, "balancedness", H5T_IEEE_F32LE, 2, baldims, 256);
    r->tim = create_ext(r->grp, "step_time", H5T_IEEE_F64LE, 2, timdims, 1024);
    r->ev = create_ext(r->grp, "events", h->ev_ftype, 1, NULL, 256);
    r->pl = create_ext(r->grp, "placements", H5T_STD_I32LE, 3, pldims, 1);
    r->plstep = create_ext(r->grp, "placement_steps", H5T_STD_I64LE, 1, NULL, 256);
    if (r->tok < 0 || r->bal < 0 || r->tim < 0 || r->ev < 0 || r->pl < 0 ||
        r->plstep < 0)
        return h5err(h, "run datasets");
    EPLB_CHECK(attr_str(h, r->tim, "columns", "compute_s,a2a_s,overhead_s,stall_s"));
    return write_fixed(h, r->grp, "placement_initial", h->L, r->P, placement, &r->pl0);
}

static eplb_status_t unlocked_append_steps(eplb_sim_h5_t *h, int idx, int64_t n,
                                           const int64_t *tokens, const float *bal,
                                           const double *times)
{
    h5run_t *r = &h->run[idx];
    if (append(r->tok, H5T_NATIVE_INT64, (hsize_t)n, tokens) < 0 ||
        append(r->bal, H5T_NATIVE_FLOAT, (hsize_t)n, bal) < 0 ||
        append(r->tim, H5T_NATIVE_DOUBLE, (hsize_t)n, times) < 0)
        return h5err(h, "step series");
    return EPLB_OK;
}

static eplb_status_t unlocked_append_events(eplb_sim_h5_t *h, int idx,
                                        const eplb_sim_event_t *ev, size_t n)
{
    if (append(h->run[idx].ev, h->ev_type, n, ev) < 0)
        return h5err(h, "events");
    return EPLB_OK;
}

static eplb_status_t unlocked_append_placement(eplb_sim_h5_t *h, int idx, int64_t step,
                                           const int32_t *placement)
{
    h5run_t *r = &h->run[idx];
    if (append(r->pl, H5T_NATIVE_INT32, 1, placement) < 0 ||
        append(r->plstep, H5T_NATIVE_INT64, 1, &step) < 0)
        return h5err(h, "placements");
    return EPLB_OK;
}

static eplb_status_t unlocked_end_run(eplb_sim_h5_t *h, int idx,
                                  const eplb_sim_result_t *s, const int32_t *placement)
{
    hid_t g = h->run[idx].grp;
    EPLB_CHECK(
        write_fixed(h, g, "placement_final", h->L, h->run[idx].P, placement, &h->run[idx].plf));
    EPLB_CHECK(attr_f64(h, g, "balancedness", s->balancedness));
    EPLB_CHECK(attr_f64(h, g, "max_over_mean", s->max_over_mean));
    EPLB_CHECK(attr_i64(h, g, "worst_layer", s->worst_layer));
    EPLB_CHECK(attr_i64(h, g, "rebalances", s->rebalances));
    EPLB_CHECK(attr_i64(h, g, "moved_replicas", s->moved_replicas));
    EPLB_CHECK(attr_i64(h, g, "moved_bytes", s->moved_bytes));
    EPLB_CHECK(attr_f64(h, g, "stall_s", s->stall_s));
    EPLB_CHECK(attr_f64(h, g, "moe_time_s", s->moe_time_s));
    EPLB_CHECK(attr_f64(h, g, "overhead_s", s->overhead_s));
    EPLB_CHECK(attr_f64(h, g, "gain_vs_none", s->gain_vs_none));
    return EPLB_OK;
}

/* Close every object of the file (not the file). */
static void close_objects(eplb_sim_h5_t *h)
{
    for (int i = 0; h->run && i < h->nruns; i++) {
        h5run_t *r = &h->run[i];
        hid_t *ids[] = {&r->tok,    &r->bal, &r->tim, &r->ev, &r->pl,
                        &r->plstep, &r->pl0, &r->plf, &r->grp};
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
            eplb_h5_close(ids[k]);
    }
    eplb_h5_close(&h->ev_type);
    eplb_h5_close(&h->ev_ftype);
    eplb_h5_close(&h->runs_grp);
    eplb_h5_close(&h->gcpl);
}

static void h5_free(eplb_sim_h5_t *h)
{
    eplb_tmp_guard_disarm(h->guard);
    free(h->path);
    free(h->tmp);
    free(h->run);
    free(h);
}

static eplb_status_t unlocked_finish(eplb_sim_h5_t *h)
{
    /* Flush while everything is open: a write that fails here leaves the
     * file to unlocked_abort, which discards it; a dataset or file whose
     * close fails cannot be closed again (traces/h5util.h). */
    if (H5Fflush(h->file, H5F_SCOPE_LOCAL) < 0) {
        eplb_status_t st = eplb_h5_fail(EPLB_ERR_IO, h->path, NULL, "cannot write file");
        unlocked_abort(h);
        return st;
    }
    close_objects(h);
    eplb_status_t st = eplb_h5_file_close_all(&h->file, h->path);
    if (st == EPLB_OK)
        st = eplb_tmp_rename_into_place(h->tmp, h->path);
    if (st != EPLB_OK)
        unlink(h->tmp);
    h5_free(h);
    return st;
}

/* Close and delete the temporary file, keeping the message of the failure
 * that brought us here. */
static void unlocked_abort(eplb_sim_h5_t *h)
{
    if (!h)
        return;
    if (h->file >= 0)
        eplb_h5_file_discard_writes(h->file);
    close_objects(h);
    if (h->file >= 0) {
        eplb_h5_file_close_all(&h->file, NULL);
        unlink(h->tmp);
    }
    h5_free(h);
}

/* The entry points under the process-wide HDF5 lock, as every entry point
 * that calls HDF5 (traces/h5util.h): a serial HDF5 build is not
 * thread-safe, and trace reads may run on other threads. */
#define LOCKED(call)                                                           \
    do {                                                                       \
        eplb_h5_lock();                                                        \
        eplb_status_t st_ = (call);                                            \
        eplb_h5_unlock();                                                      \
        return st_;                                                            \
    } while (0)

eplb_status_t eplb_sim_h5_create(eplb_sim_h5_t **out, const char *path, int L, int E,
                                 int K, int64_t S, const char *model,
                                 const char *config_json, int nruns)
{
    LOCKED(unlocked_create(out, path, L, E, K, S, model, config_json, nruns));
}

eplb_status_t eplb_sim_h5_add_run(eplb_sim_h5_t *h, int idx, const eplb_sim_run_cfg_t *cfg,
                                  const char *label, const char *policy,
                                  const int32_t *placement)
{
    LOCKED(unlocked_add_run(h, idx, cfg, label, policy, placement));
}

eplb_status_t eplb_sim_h5_append_steps(eplb_sim_h5_t *h, int idx, int64_t n, const int64_t *tokens,
                                       const float *bal, const double *times)
{
    LOCKED(unlocked_append_steps(h, idx, n, tokens, bal, times));
}

eplb_status_t eplb_sim_h5_append_events(eplb_sim_h5_t *h, int idx, const eplb_sim_event_t *ev,
                                        size_t n)
{
    LOCKED(unlocked_append_events(h, idx, ev, n));
}

eplb_status_t eplb_sim_h5_append_placement(eplb_sim_h5_t *h, int idx, int64_t step,
                                           const int32_t *placement)
{
    LOCKED(unlocked_append_placement(h, idx, step, placement));
}

eplb_status_t eplb_sim_h5_end_run(eplb_sim_h5_t *h, int idx, const eplb_sim_result_t *res,
                                  const int32_t *placement)
{
    LOCKED(unlocked_end_run(h, idx, res, placement));
}

eplb_status_t eplb_sim_h5_finish(eplb_sim_h5_t *h)
{
    LOCKED(unlocked_finish(h));
}

void eplb_sim_h5_abort(eplb_sim_h5_t *h)
{
    eplb_h5_lock();
    unlocked_abort(h);
    eplb_h5_unlock();
}
