/* trace_fixtures.c - helpers of the trace, generator and importer suites. */
#include "trace_fixtures.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"

eplb_trace_writer_opts_t eplb_test_writer_opts(const char *model, const char *source, int L,
                                               int E, int K, unsigned levels)
{
    eplb_trace_writer_opts_t o = EPLB_TRACE_WRITER_OPTS_INIT;
    o.model = model;
    o.source = source;
    o.num_layers = L;
    o.route.num_experts = E;
    o.route.top_k = K;
    o.levels = levels;
    return o;
}

eplb_trace_t *eplb_test_shipped_open(const char *rel)
{
    const char *path = eplb_test_path(eplb_test_srcdir(), rel);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "%s missing", path);
    cr_assert(sb.st_size < 10 * 1000 * 1000, "%s: %lld bytes", path, (long long)sb.st_size);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    return tr;
}

int eplb_test_h5_filters(const char *path, const char *name, int *ids, unsigned *deflate_level)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "%s: cannot open", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(d >= 0, "%s: %s: cannot open", path, name);
    hid_t dcpl = H5Dget_create_plist(d);
    cr_assert(dcpl >= 0);
    int n = H5Pget_nfilters(dcpl);
    cr_assert(n >= 0 && n <= 4, "%s: %s: %d filters", path, name, n);
    *deflate_level = 0;
    for (int i = 0; i < n; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        ids[i] = (int)H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (ids[i] == H5Z_FILTER_DEFLATE && ncd >= 1)
            *deflate_level = cd[0];
    }
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    return n;
}

void eplb_test_cli_expect(int want_status, const char *want_text, const char *args_fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, args_fmt);
    int n = vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof args, "command line too long");
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "%s", args);
    cr_assert_eq(rc, want_status, "eplb-replay %s: exit %d, want %d: %s", args, rc, want_status,
                 out ? out : "");
    if (want_text)
        cr_assert(out && strstr(out, want_text) != NULL, "eplb-replay %s: output lacks '%s': %s",
                  args, want_text, out ? out : "");
    free(out);
}

void eplb_test_h5_poke(const char *path, const char *name, const hsize_t *c, hid_t mt,
                       const void *v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot reopen %s", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(d >= 0, "%s: no %s", path, name);
    hid_t ft = mt < 0 ? H5Dget_type(d) : mt, fs = H5Dget_space(d);
    hsize_t one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    cr_assert(H5Sselect_elements(fs, H5S_SELECT_SET, 1, c) >= 0);
    cr_assert(H5Dwrite(d, ft, ms, fs, H5P_DEFAULT, v) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    if (mt < 0)
        H5Tclose(ft);
    H5Dclose(d);
    H5Fclose(f);
}

