/* trace_fixtures.h - helpers shared by the trace, generator and importer
 * suites (test_traces.c, test_gen.c, test_import.c). */
#ifndef EPLB_TEST_TRACE_FIXTURES_H
#define EPLB_TEST_TRACE_FIXTURES_H

#include <hdf5.h>
#include <stddef.h>

#include "helpers.h" /* eplb_test_write_text, eplb_test_slurp */
#include "trace.h"

/* Writer options: EPLB_TRACE_WRITER_OPTS_INIT with the model and source
 * attributes, L layers, E experts, top-K and the levels set. */
eplb_trace_writer_opts_t eplb_test_writer_opts(const char *model, const char *source, int L,
                                               int E, int K, unsigned levels);

/* Open a trace shipped in the repository (rel to the source dir), asserting
 * that it exists and is under 10 MB (the limit for shipped files). */
eplb_trace_t *eplb_test_shipped_open(const char *rel);

/* Filter ids of dataset `name` of the HDF5 file `path` (at most 4) and, in
 * *deflate_level, the deflate level (0 if no deflate).  The file must not
 * be open through eplb_trace_open (HDF5 refuses a second open with other
 * file-close settings). */
int eplb_test_h5_filters(const char *path, const char *name, int *ids,
                         unsigned *deflate_level);

/* Overwrite one element (at coordinates c) of dataset `name` of the HDF5
 * file `path` with *v of memory type mt (mt < 0: raw bytes in the
 * dataset's own type), asserting success: values the writer refuses (NaN
 * logits, decreasing offsets). */
void eplb_test_h5_poke(const char *path, const char *name, const hsize_t *c, hid_t mt,
                       const void *v);

/* Run `eplb-replay ARGS`; assert the exit status and, if want_text is not
 * NULL, that the output contains it. */
void eplb_test_cli_expect(int want_status, const char *want_text, const char *args_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
