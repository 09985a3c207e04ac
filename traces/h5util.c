/* h5util.c - HDF5 error translation, lock, float types, attributes. */
#include "h5util.h"

#include "checks.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;
static _Thread_local int h5_silenced;

static void h5_init_once(void)
{
    /* No clean-up at exit (before the first call, or it has no effect): the
     * only ids left at exit belong to a file or dataset whose close failed,
     * which HDF5 1.10 frees but keeps the id of, and H5_term_library then
     * crashes on it.  The close cannot always be made to succeed: after a
     * failed metadata flush even a later flush that can write fails
     * ("slist already enabled?").  Every file is closed explicitly, and a
     * file is renamed into place only after its close succeeded, so no
     * output depends on the clean-up. */
    H5dont_atexit();
    H5open();
}

void eplb_h5_init(void)
{
    pthread_once(&h5_once, h5_init_once);
    /* The automatic printer is per thread in thread-safe builds of HDF5 and
     * global otherwise: silence it for every thread that gets here. */
    if (!h5_silenced) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        h5_silenced = 1;
    }
}

void eplb_h5_lock(void)
{
    pthread_mutex_lock(&h5_mutex);
    eplb_h5_init();
}

void eplb_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

/* The sec2 driver describes a failed system call in some 300 characters
 * (time, file name, descriptor, buffer address, sizes), which put the
 * errno text past the end of the buffer: keep the head and the errno
 * text, as in "file write failed: No space left on device". */
static void describe(char *buf, size_t n, const char *desc)
{
    static const char key[] = "error message = '";
    const char *m = strstr(desc, key);
    if (!m) {
        snprintf(buf, n, "%s", desc);
        return;
    }
    m += sizeof key - 1;
    const char *end = strchr(m, '\'');
    snprintf(buf, n, "%.*s: %.*s", (int)strcspn(desc, ":,"), desc,
             (int)(end ? (size_t)(end - m) : strlen(m)), m);
}

static herr_t reason_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    char *buf = data;
    (void)n;
    /* The first (most specific) entry, except for the plugin search: a
     * filter that is not built in (lzf, blosc, ...) fails first on "can't
     * open directory: .../plugins"; the useful entry is the one above,
     * "required filter 'lzf' is not registered". */
    if (buf[0] || !e->desc)
        return 0;
    if (e->func_name && !strncmp(e->func_name, "H5PL", 4))
        return 0;
    describe(buf, 256, e->desc);
    return 0;
}

const char *eplb_h5_reason(void)
{
    static _Thread_local char buf[256];
    buf[0] = '\0';
    /* Upward: entry 0 is the most specific error (the cause). */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, reason_cb, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

eplb_status_t eplb_h5_fail(eplb_status_t st, const char *path, const char *obj,
                           const char *what)
{
    const char *r = eplb_h5_reason();
    /* A message version this library does not know: corrupt metadata, or
     * (the likelier) a file written by a newer HDF5 in a newer format (h5py
     * on HDF5 2.0 with libver='latest' writes layout message version 5 for
     * every filtered dataset, which HDF5 1.10.8 calls "bad version number
     * for layout message").  Say so, and how to write one this build reads. */
    char hint[320] = "";
    if (strstr(r, "version number")) {
        unsigned maj = 0, min = 0, rel = 0;
        H5get_libversion(&maj, &min, &rel);
        snprintf(hint, sizeof hint,
                 "; a file format newer than this build's HDF5 %u.%u.%u reads (h5py on "
                 "HDF5 >= 2.0 with libver='latest' writes one; libver=('v110', 'latest') "
                 "keeps SWMR and is read), or corrupt metadata",
                 maj, min, rel);
    }
    return eplb_error_set(st, "%s: %s%s%s%s%s%s%s", path, obj ? obj : "", obj ? ": " : "", what,
                          r[0] ? " (hdf5: " : "", r, r[0] ? ")" : "", hint);
}

uint64_t eplb_h5_chunk_slots(int rank, const hsize_t *dims, const hsize_t *cd)
{
    uint64_t slots = 1;
    for (int i = 0; i < rank; i++) {
        const uint64_t n = dims[i] / cd[i] + (dims[i] % cd[i] != 0);
        if (__builtin_mul_overflow(slots, n, &slots))
            slots = UINT64_MAX;
    }
    return slots;
}

void eplb_h5_close(hid_t *id)
{
    if (*id < 0)
        return;
    /* H5Eget_num does not clear the stack; a copy only when there is one */
    const hid_t why = H5Eget_num(H5E_DEFAULT) > 0 ? H5Eget_current_stack() : H5I_INVALID_HID;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
    if (why >= 0)
        H5Eset_current_stack(why);
}

void eplb_h5_file_discard_writes(hid_t file)
{
    hid_t fapl = H5Fget_access_plist(file);
    void *handle = NULL;
    if (fapl < 0 || H5Pget_driver(fapl) != H5FD_SEC2 ||
        H5Fget_vfd_handle(file, fapl, &handle) < 0 || !handle)
        goto out;
    /* A memory file, not /dev/null: closing may extend the file with
     * ftruncate, which /dev/null refuses.  dup2 swaps it in under the
     * descriptor number HDF5 holds (and closes the real file, whose space
     * its unlink then frees). */
    int fd = *(const int *)handle, mem = memfd_create("eplb-discard", MFD_CLOEXEC);
    if (mem < 0)
        goto out;
    if (dup2(mem, fd) == fd)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    close(mem);
out:
    eplb_h5_close(&fapl);
    H5Eclear2(H5E_DEFAULT);
}

eplb_status_t eplb_h5_file_close_all(hid_t *file, const char *path)
{
    if (*file < 0)
        return EPLB_OK;
    /* with the default (weak) close degree the file stays open while any
     * of its objects is, and an error path may have left some open */
    const unsigned types =
        H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR | H5F_OBJ_LOCAL;
    ssize_t n = H5Fget_obj_count(*file, types);
    hid_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
    if (ids) {
        n = H5Fget_obj_ids(*file, types, (size_t)n, ids);
        for (ssize_t i = 0; i < n; i++)
            eplb_h5_close(&ids[i]);
        free(ids);
    }
    herr_t e = H5Fclose(*file);
    *file = H5I_INVALID_HID;
    if (e >= 0)
        return EPLB_OK;
    if (!path) {
        H5Eclear2(H5E_DEFAULT);
        return EPLB_ERR_IO;
    }
    return eplb_h5_fail(EPLB_ERR_IO, path, NULL, "cannot close file");
}

/* A 2-byte little-endian float with the given fields, derived from IEEE
 * single so the normalisation (implied leading 1) and padding match. */
static hid_t make_half(size_t epos, size_t esize, size_t msize, size_t ebias)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0)
        return t;
    if (H5Tset_fields(t, 15, epos, esize, 0, msize) < 0 || H5Tset_offset(t, 0) < 0 ||
        H5Tset_precision(t, 16) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, ebias) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

hid_t eplb_h5_type_bf16(void) { return make_half(7, 8, 7, 127); }
hid_t eplb_h5_type_f16(void) { return make_half(10, 5, 10, 15); }

hid_t eplb_h5_type_logits(eplb_dtype_t dt)
{
    switch (dt) {
    case EPLB_DTYPE_F32: return H5Tcopy(H5T_NATIVE_FLOAT);
    case EPLB_DTYPE_F16: return eplb_h5_type_f16();
    case EPLB_DTYPE_BF16: return eplb_h5_type_bf16();
    }
    return H5I_INVALID_HID;
}

eplb_status_t eplb_h5_type_classify(eplb_dtype_t *out, hid_t ftype,
                                    const char *path, const char *obj)
{
    if (H5Tget_class(ftype) != H5T_FLOAT)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: not a floating-point dataset", path,
                              obj);
    size_t spos, epos, esize, mpos, msize;
    size_t size = H5Tget_size(ftype), ebias = H5Tget_ebias(ftype);
    if (H5Tget_fields(ftype, &spos, &epos, &esize, &mpos, &msize) < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, path, obj, "cannot read float fields");
    size_t off = (size_t)H5Tget_offset(ftype);
    if (size == 4 && off == 0 && spos == 31 && epos == 23 && esize == 8 && mpos == 0 &&
        msize == 23 && ebias == 127) {
        *out = EPLB_DTYPE_F32;
        return EPLB_OK;
    }
    if (size == 2 && off == 0 && spos == 15 && epos == 10 && esize == 5 && mpos == 0 &&
        msize == 10 && ebias == 15) {
        *out = EPLB_DTYPE_F16;
        return EPLB_OK;
    }
    if (size == 2 && off == 0 && spos == 15 && epos == 7 && esize == 8 && mpos == 0 &&
        msize == 7 && ebias == 127) {
        *out = EPLB_DTYPE_BF16;
        return EPLB_OK;
    }
    return eplb_error_set(EPLB_ERR_FORMAT,
                          "%s: %s: unsupported float type (size %zu, sign bit %zu, exponent "
                          "%zu bits at %zu, mantissa %zu bits, bias %zu); expected float32, "
                          "float16 or bfloat16",
                          path, obj, size, spos, esize, epos, msize, ebias);
}

/* Whether the group part of link path p ("/a/b" -> "/a") opens as a group
 * (1), else 0: H5Lexists fails under a dataset, as it does on a read
 * error. */
static int parent_is_group(hid_t file, const char *p)
{
    char par[1024];
    const char *slash = strrchr(p, '/');
    if (!slash || slash == p)
        return 1; /* the root group */
    snprintf(par, sizeof par, "%.*s", (int)(slash - p), p);
    /* the failed look-up's reason is what the caller reports: kept aside
     * while the parent is opened (each HDF5 call clears the stack) */
    const hid_t why = H5Eget_current_stack();
    hid_t o = H5Oopen(file, par, H5P_DEFAULT);
    int g = 1; /* could not be opened: a failure, not a dataset */
    if (o >= 0) {
        g = H5Iget_type(o) == H5I_GROUP;
        H5Oclose(o);
    }
    if (why >= 0)
        H5Eset_current_stack(why);
    return g;
}

/* ---- attributes --------------------------------------------------------- */

static eplb_status_t attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype,
                                const void *v, const char *path)
{
    eplb_status_t st = EPLB_OK;
    hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    if (space < 0) {
        st = eplb_h5_fail(EPLB_ERR_IO, path, name, "cannot create attribute space");
        goto out;
    }
    if (H5Aexists(loc, name) > 0)
        H5Adelete(loc, name);
    attr = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, mtype, v) < 0)
        st = eplb_h5_fail(EPLB_ERR_IO, path, name, "cannot write attribute");
out:
    eplb_h5_close(&attr);
    eplb_h5_close(&space);
    return st;
}

eplb_status_t eplb_h5_attr_write_int(hid_t loc, const char *name, int64_t v,
                                     const char *path)
{
    return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path);
}

eplb_status_t eplb_h5_attr_write_double(hid_t loc, const char *name, double v,
                                        const char *path)
{
    return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path);
}

eplb_status_t eplb_h5_attr_write_str(hid_t loc, const char *name, const char *v,
                                     const char *path)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        eplb_h5_close(&t);
        return eplb_h5_fail(EPLB_ERR_IO, path, name, "cannot create string type");
    }
    eplb_status_t st = attr_write(loc, name, t, t, &v, path);
    H5Tclose(t);
    return st;
}

int eplb_h5_attr_exists(hid_t loc, const char *name) { return (int)H5Aexists(loc, name); }

#define LINK_DEPTH_MAX 16

static eplb_status_t links_check(int *exists, hid_t file, const char *name, const char *path,
                                 const char *obj, int depth)
{
    char buf[1024];
    size_t n = strlen(name);
    *exists = 0;
    if (n >= sizeof buf || name[0] != '/')
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: soft link target '%.64s' is not an "
                              "absolute path of at most %zu bytes", path, obj, name,
                              sizeof buf - 1);
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        const char c = buf[i];
        buf[i] = '\0';
        /* the parent resolved already (its links passed): this looks up
         * one link of it and follows none */
        H5L_info_t li;
        const htri_t le = H5Lexists(file, buf, H5P_DEFAULT);
        if (le == 0 || (le < 0 && !parent_is_group(file, buf))) {
            H5Eclear2(H5E_DEFAULT);
            return EPLB_OK; /* missing (under a dataset: nothing there either) */
        }
        /* a failed look-up is no "missing": a read error here had dropped
         * the logits of a trace silently (an I/O fault-injection audit) */
        if (le < 0 || H5Lget_info(file, buf, &li, H5P_DEFAULT) < 0)
            return eplb_h5_fail(EPLB_ERR_IO, path, buf, "cannot look up link");
        /* "PATH: /router/logits: /router is ...", or "PATH: /router/logits is ..." */
        const int same = !strcmp(obj, buf);
        if (li.type == H5L_TYPE_EXTERNAL)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: %s%s%s is an external link (to another file); a trace "
                                  "keeps its data in one file",
                                  path, obj, same ? "" : ": ", same ? "" : buf);
        if (li.type != H5L_TYPE_HARD && li.type != H5L_TYPE_SOFT)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: %s%s%s is a user-defined link (type %d); a trace has "
                                  "hard and soft links only",
                                  path, obj, same ? "" : ": ", same ? "" : buf, (int)li.type);
        if (li.type == H5L_TYPE_SOFT) {
            if (depth >= LINK_DEPTH_MAX)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: %s: soft links nested more than %d deep at %s",
                                      path, obj, LINK_DEPTH_MAX, buf);
            char val[1024], target[1024];
            if (li.u.val_size == 0 || li.u.val_size > sizeof val ||
                H5Lget_val(file, buf, val, sizeof val, H5P_DEFAULT) < 0) {
                H5Eclear2(H5E_DEFAULT);
                return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: cannot read soft link %s",
                                      path, obj, buf);
            }
            val[sizeof val - 1] = '\0';
            /* a relative target is relative to the group holding the link */
            const char *slash = strrchr(buf, '/');
            int len = val[0] == '/' ? snprintf(target, sizeof target, "%s", val)
                                    : snprintf(target, sizeof target, "%.*s/%s",
                                               (int)(slash - buf), buf, val);
            if (len < 0 || (size_t)len >= sizeof target)
                return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s: soft link %s: target too "
                                      "long", path, obj, buf);
            int te = 0;
            EPLB_CHECK(links_check(&te, file, target, path, obj, depth + 1));
            if (te <= 0) { /* dangles: the named link itself, or one on the way */
                *exists = i == n ? -1 : 0;
                return EPLB_OK;
            }
        }
        buf[i] = c;
    }
    htri_t e = H5Oexists_by_name(file, name, H5P_DEFAULT);
    if (e < 0)
        return eplb_h5_fail(EPLB_ERR_IO, path, name, "cannot look up object");
    H5Eclear2(H5E_DEFAULT);
    *exists = e > 0;
    return EPLB_OK;
}

eplb_status_t eplb_h5_links_check(int *exists, hid_t file, const char *name, const char *path)
{
    return links_check(exists, file, name, path, name, 0);
}

/* Open attribute `name`, check it is a scalar or a one-element array. */
static eplb_status_t attr_open(hid_t *attr, hid_t *type, hid_t loc, const char *name,
                               const char *path)
{
    htri_t e = H5Aexists(loc, name);
    if (e < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot look up attribute");
    if (e == 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: missing root attribute '%s'", path, name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot open attribute");
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    eplb_h5_close(&sp);
    if (np != 1) {
        H5Aclose(a);
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: root attribute '%s' has %lld values, expected one", path,
                              name, (long long)np);
    }
    *type = H5Aget_type(a);
    *attr = a;
    return EPLB_OK;
}

/* Read an enum (h5py stores numpy bool as an int8 enum) as its integer. */
static eplb_status_t read_enum(int64_t *out, hid_t attr, hid_t type, const char *name,
                               const char *path)
{
    unsigned char raw[8] = {0};
    hid_t super = H5Tget_super(type), mt = H5Tget_native_type(type, H5T_DIR_ASCEND);
    /* raw holds the value in the native type: its size, not the file's (a
     * 3-byte enum is read into 4, and -1 had read as 4294967295) */
    const size_t size = mt < 0 ? 0 : H5Tget_size(mt);
    eplb_status_t st = EPLB_OK;
    if (super < 0 || mt < 0 || size > 8 || H5Aread(attr, mt, raw) < 0) {
        st = eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot read enum attribute");
        goto out;
    }
    int sgn = H5Tget_sign(super) == H5T_SGN_2;
    int64_t v = 0;
    switch (size) {
    case 1: v = sgn ? (int64_t) * (int8_t *)raw : (int64_t) * (uint8_t *)raw; break;
    case 2: v = sgn ? (int64_t) * (int16_t *)raw : (int64_t) * (uint16_t *)raw; break;
    case 4: v = sgn ? (int64_t) * (int32_t *)raw : (int64_t) * (uint32_t *)raw; break;
    default: memcpy(&v, raw, 8); break;
    }
    *out = v;
out:
    eplb_h5_close(&mt);
    eplb_h5_close(&super);
    return st;
}

static eplb_status_t attr_read_num(int64_t *iout, double *dout, hid_t loc, const char *name,
                                   const char *path)
{
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID;
    eplb_status_t st = attr_open(&a, &t, loc, name, path);
    if (st != EPLB_OK)
        return st;
    H5T_class_t cls = H5Tget_class(t);
    if (cls == H5T_ENUM) {
        int64_t v = 0;
        st = read_enum(&v, a, t, name, path);
        if (st == EPLB_OK) {
            if (iout)
                *iout = v;
            else
                *dout = (double)v;
        }
    } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
        if (iout && cls == H5T_FLOAT) {
            double d;
            if (H5Aread(a, H5T_NATIVE_DOUBLE, &d) < 0)
                st = eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot read attribute");
            else if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
                     d != (double)(int64_t)d) /* range first: the cast is UB past int64 */
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s: root attribute '%s' = %g is not an integer", path,
                                    name, d);
            else
                *iout = (int64_t)d;
        } else if (iout && H5Tget_sign(t) == H5T_SGN_NONE && H5Tget_size(t) >= 8) {
            /* HDF5 clamps an unsigned value past int64 to INT64_MAX: say it */
            unsigned long long u;
            if (H5Aread(a, H5T_NATIVE_ULLONG, &u) < 0)
                st = eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot read attribute");
            else if (u > (unsigned long long)INT64_MAX)
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s: root attribute '%s' = %llu is past int64", path, name,
                                    u);
            else
                *iout = (int64_t)u;
        } else if (H5Aread(a, iout ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE,
                           iout ? (void *)iout : (void *)dout) < 0) {
            st = eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot read attribute");
        }
    } else {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: root attribute '%s' is not a number", path,
                            name);
    }
    H5Tclose(t);
    H5Aclose(a);
    return st;
}

eplb_status_t eplb_h5_attr_read_int(int64_t *out, hid_t loc, const char *name,
                                    const char *path)
{
    int64_t v;
    eplb_status_t st = attr_read_num(&v, NULL, loc, name, path);
    if (st == EPLB_OK)
        *out = v;
    return st;
}

eplb_status_t eplb_h5_attr_read_double(double *out, hid_t loc, const char *name,
                                       const char *path)
{
    double v;
    eplb_status_t st = attr_read_num(NULL, &v, loc, name, path);
    if (st == EPLB_OK)
        *out = v;
    return st;
}

static eplb_status_t str_too_long(const char *path, const char *name, size_t n)
{
    return eplb_error_set(EPLB_ERR_FORMAT,
                          "%s: root attribute '%s' is a string of %zu bytes; at most %zu (16 "
                          "MiB)",
                          path, name, n, EPLB_H5_ATTR_STR_MAX);
}

eplb_status_t eplb_h5_attr_read_str(char **out, hid_t loc, const char *name,
                                    const char *path)
{
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    char *res = NULL;
    eplb_status_t st = attr_open(&a, &t, loc, name, path);
    if (st != EPLB_OK)
        return st;
    if (H5Tget_class(t) != H5T_STRING) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: root attribute '%s' is not a string", path,
                            name);
        goto out;
    }
    mt = H5Tcopy(t);
    if (mt < 0) {
        st = eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot copy string type");
        goto out;
    }
    if (H5Tis_variable_str(t) > 0) {
        char *p = NULL;
        if (H5Aread(a, mt, &p) < 0) {
            st = eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot read string attribute");
            goto out;
        }
        const size_t len = p ? strlen(p) : 0;
        if (len <= EPLB_H5_ATTR_STR_MAX)
            res = strdup(p ? p : "");
        H5free_memory(p);
        if (len > EPLB_H5_ATTR_STR_MAX) {
            st = str_too_long(path, name, len);
            goto out;
        }
    } else {
        /* a corrupt size (4 bytes in the file) had the parent allocate and
         * fill up to the probe's 2 GiB cap; a legitimate one fits in an
         * object header (64 KiB) unless the attribute is stored densely */
        size_t n = H5Tget_size(t);
        if (n > EPLB_H5_ATTR_STR_MAX) {
            st = str_too_long(path, name, n);
            goto out;
        }
        res = calloc(n + 1, 1);
        if (res && H5Aread(a, mt, res) < 0) {
            st = eplb_h5_fail(EPLB_ERR_FORMAT, path, name, "cannot read string attribute");
            goto out;
        }
        /* NULs pad a fixed-length string at its end; text after one was
         * cut off silently ("to\0ken" read as "to") */
        const size_t len = res ? strlen(res) : 0;
        for (size_t i = len; res && i < n; i++)
            if (res[i]) {
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s: root attribute '%s' holds a NUL byte at %zu, before "
                                    "more text",
                                    path, name, len);
                goto out;
            }
    }
    EPLB_ALLOC_GOTO(res, st, out);
out:
    if (st != EPLB_OK) {
        free(res);
        res = NULL;
    }
    eplb_h5_close(&mt);
    eplb_h5_close(&t);
    eplb_h5_close(&a);
    if (st == EPLB_OK)
        *out = res;
    return st;
}
