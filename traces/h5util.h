/* h5util.h - HDF5 helpers shared by the trace reader and writer (internal).
 *
 * House style 13: the automatic HDF5 error printer is silenced once
 * (eplb_h5_init); every failure is translated into an eplb status whose
 * message names the file and the object, with HDF5's innermost reason
 * appended.  The serial HDF5 library is not thread-safe, so every trace
 * entry point that calls HDF5 holds one process-wide lock (eplb_h5_lock). */
#ifndef EPLB_TRACES_H5UTIL_H
#define EPLB_TRACES_H5UTIL_H

#include <hdf5.h>

#include "eplb.h"

/* Silence the automatic error stack printing (once per process) and make
 * sure the library is initialised, without HDF5's clean-up at exit (which
 * crashes on a file whose close failed; every file here is closed by the
 * code that opened it). */
void eplb_h5_init(void);

/* Process-wide lock around HDF5 calls (the serial library is not
 * thread-safe).  Not recursive: public functions lock, static ones don't. */
void eplb_h5_lock(void);
void eplb_h5_unlock(void);

/* Innermost description on the current HDF5 error stack (the cause), or ""
 * if empty; clears the stack.  The buffer is thread-local. */
const char *eplb_h5_reason(void);

/* Set st with "PATH: OBJ: WHAT (hdf5: reason)" and return it. */
eplb_status_t eplb_h5_fail(eplb_status_t st, const char *path, const char *obj,
                           const char *what);

/* Chunks in a chunked extent: the product over its rank of ceil(dims /
 * cd), saturated at UINT64_MAX (0 where a dimension is 0; cd[i] >= 1). */
uint64_t eplb_h5_chunk_slots(int rank, const hsize_t *dims, const hsize_t *cd);

/* Close an id if valid (any kind: dataset, space, type, plist, attr, file)
 * and set it to H5I_INVALID_HID.  HDF5's error stack is kept as it was
 * (each HDF5 call clears it): a failure's reason survives the closes
 * between the failure and eplb_h5_fail. */
void eplb_h5_close(hid_t *id);

/* For a file that is thrown away after a failed write: from now on its
 * writes go to an anonymous memory file (sec2 driver only, the default
 * one every writer here uses; otherwise nothing changes).  Call it before
 * closing anything of the file, so that the flushes done by closing do not
 * fail as the write did: HDF5 1.10 frees an object whose close fails but
 * keeps its id, and its clean-up at exit then crashes on that id (see
 * eplb_h5_init).  Best effort: a close can still fail, e.g. when the disk
 * filled up during a metadata flush or the file is past RLIMIT_FSIZE. */
void eplb_h5_file_discard_writes(hid_t file);

/* Close every object still open in *file (datasets, groups, named types,
 * attributes), then the file, and set *file to H5I_INVALID_HID in every
 * case.  A failed close: EPLB_ERR_IO, with the message "PATH: cannot close
 * file (hdf5: ...)", or no message if path is NULL (for error paths, which
 * keep the message of the failure they report). */
eplb_status_t eplb_h5_file_close_all(hid_t *file, const char *path);

/* bfloat16 (size 2, sign 15, exponent 7..14, mantissa 0..6, bias 127) and
 * IEEE half (sign 15, exponent 10..14, mantissa 0..9, bias 15), both little
 * endian, as new HDF5 float types (caller closes).  Negative on failure. */
hid_t eplb_h5_type_bf16(void);
hid_t eplb_h5_type_f16(void);
/* New memory type for a logits dtype (f32: a copy of H5T_NATIVE_FLOAT). */
hid_t eplb_h5_type_logits(eplb_dtype_t dt);
/* Classify a float file type as f32, f16 or bf16 by its bit fields;
 * EPLB_ERR_FORMAT (message names path/obj) otherwise. */
eplb_status_t eplb_h5_type_classify(eplb_dtype_t *out, hid_t ftype,
                                    const char *path, const char *obj);

/* ---- attributes (root object `loc`) ---------------------------------- */
/* Write a scalar attribute. */
eplb_status_t eplb_h5_attr_write_int(hid_t loc, const char *name, int64_t v,
                                     const char *path);
eplb_status_t eplb_h5_attr_write_double(hid_t loc, const char *name, double v,
                                        const char *path);
/* Variable-length UTF-8 string (h5py reads it as str). */
eplb_status_t eplb_h5_attr_write_str(hid_t loc, const char *name,
                                     const char *v, const char *path);

/* Read a scalar (or one-element) numeric attribute, converting integer,
 * float or enum (h5py bool) types.  Missing: EPLB_ERR_FORMAT naming it. */
eplb_status_t eplb_h5_attr_read_int(int64_t *out, hid_t loc, const char *name,
                                    const char *path);
eplb_status_t eplb_h5_attr_read_double(double *out, hid_t loc,
                                       const char *name, const char *path);
/* Read a fixed- or variable-length string attribute into a malloc'd
 * NUL-terminated string of at most EPLB_H5_ATTR_STR_MAX bytes (longer:
 * EPLB_ERR_FORMAT naming it; a fixed-length one refused before anything
 * is allocated for it). */
#define EPLB_H5_ATTR_STR_MAX ((size_t)16 << 20)
eplb_status_t eplb_h5_attr_read_str(char **out, hid_t loc, const char *name,
                                    const char *path);
/* 1 if attribute `name` exists on loc, 0 if not, negative on error. */
int eplb_h5_attr_exists(hid_t loc, const char *name);
/* Check the links along `name` (absolute, like "/router/logits") before
 * anything follows them: each one is looked at with H5Lget_info, which
 * does not resolve it.  An external link (or a user-defined one) is
 * EPLB_ERR_FORMAT naming path and the link: following it opens another
 * file, which may be a FIFO that blocks for ever or any file on the host.
 * A soft link is followed only once the links of its target passed the
 * same check (at most 16 deep, HDF5's default).  *exists: 1 if name
 * resolves to an object, -1 if name itself is a soft link that leads
 * nowhere, 0 if a link on the way is missing or dangles. */
eplb_status_t eplb_h5_links_check(int *exists, hid_t file, const char *name, const char *path);

#endif
