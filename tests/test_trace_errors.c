/* test_trace_errors.c - bad traces: each gives the right status and a
 * message naming the file and the field; none crashes.  Bad files are made
 * from a valid one with the HDF5 C API (attributes deleted or rewritten,
 * datasets replaced, single elements overwritten). */
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "h5util.h"
#include "helpers.h"
#include "pool.h"
#include "trace_fixtures.h"
#include "trace.h"

#define L_ 2
#define E_ 8
#define K_ 2
#define S_ 4
#define TPS 5 /* tokens per step */
#define T_ (S_ * TPS)

static void suite_init(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

TestSuite(trace_errors, .init = suite_init);

/* A valid f32 trace with logits, topk ids and counts (values in range). */
static const char *good_trace(void)
{
    const char *path = eplb_test_path(eplb_test_tmpdir(), "good.h5");
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("m", "test_trace_errors.c", L_, E_, K_,
                              EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS);
    o.chunk_rows = 3;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    float lg[TPS * L_ * E_];
    int32_t ids[TPS * L_ * K_], cn[L_ * E_];
    for (int s = 0; s < S_; s++) {
        for (int i = 0; i < TPS * L_ * E_; i++)
            lg[i] = (float)(i % 7) - 3.0f;
        for (int i = 0; i < TPS * L_ * K_; i++)
            ids[i] = (s + i) % E_;
        /* the counts of those ids: each layer's row sums to K x TPS, as the
         * reader wants at most */
        memset(cn, 0, sizeof cn);
        for (int i = 0; i < TPS * L_ * K_; i++)
            cn[i / K_ % L_ * E_ + ids[i]]++;
        eplb_assert_ok(eplb_trace_writer_append_step(w, TPS, lg, ids, NULL, cn, NULL, 0));
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    return path;
}

static hid_t open_rw(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot reopen %s", path);
    return f;
}

/* Replace a scalar root attribute by one of file type ft holding *v
 * (memory type mt). */
static void set_attr(const char *path, const char *name, hid_t ft, hid_t mt, const void *v)
{
    hid_t f = open_rw(path);
    if (H5Aexists(f, name) > 0)
        cr_assert(H5Adelete(f, name) >= 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(a >= 0);
    cr_assert(H5Awrite(a, mt, v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

/* Replace a scalar int attribute of the root. */
static void set_int_attr(const char *path, const char *name, int64_t v)
{
    set_attr(path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static void assert_open_fails(const char *path, eplb_status_t want, const char *needle)
{
    eplb_trace_t *tr = (eplb_trace_t *)0x1;
    eplb_assert_fails(eplb_trace_open(&tr, path), want, needle);
    cr_assert(strstr(eplb_error_last(), path) != NULL, "message '%s' does not name %s",
              eplb_error_last(), path);
    cr_assert_eq(tr, (eplb_trace_t *)0x1, "output set on failure");
}

Test(trace_errors, missing_file)
{
    const char *path = eplb_test_path(eplb_test_tmpdir(), "nope.h5");
    assert_open_fails(path, EPLB_ERR_IO, "No such file");
}

Test(trace_errors, not_hdf5)
{
    const char *path = eplb_test_path(eplb_test_tmpdir(), "text.h5");
    FILE *f = fopen(path, "w");
    fputs("this is a text file, not a trace\n", f);
    fclose(f);
    assert_open_fails(path, EPLB_ERR_FORMAT, "not an HDF5 file");
    unlink(path);
}

Test(trace_errors, truncated_file)
{
    const char *good = good_trace();
    char cut[600];
    snprintf(cut, sizeof cut, "%s.cut.h5", good);
    FILE *in = fopen(good, "rb");
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    cr_assert_eq(fread(buf, 1, (size_t)n, in), (size_t)n);
    fclose(in);
    FILE *out = fopen(cut, "wb");
    fwrite(buf, 1, (size_t)n / 2, out);
    fclose(out);
    free(buf);
    assert_open_fails(cut, EPLB_ERR_FORMAT, "truncated");
    unlink(cut);
    unlink(good);
}

Test(trace_errors, wrong_version)
{
    const char *path = good_trace();
    set_int_attr(path, "eplb_trace_version", 2);
    assert_open_fails(path, EPLB_ERR_FORMAT, "eplb_trace_version");
    unlink(path);
}

Test(trace_errors, missing_attribute)
{
    const char *path = good_trace();
    hid_t f = open_rw(path);
    cr_assert(H5Adelete(f, "top_k") >= 0);
    H5Fclose(f);
    assert_open_fails(path, EPLB_ERR_FORMAT, "'top_k'");
    unlink(path);
}

/* Replace a string attribute of the root. */
static void set_str_attr(const char *path, const char *name, const char *v)
{
    hid_t f = open_rw(path);
    if (H5Aexists(f, name) > 0)
        cr_assert(H5Adelete(f, name) >= 0);
    eplb_assert_ok(eplb_h5_attr_write_str(f, name, v, path));
    H5Fclose(f);
}

/* Strings longer than the reader keeps: a model name is refused (it was
 * cut to 127 bytes silently and printed so), the informational source is
 * cut with "...". */
Test(trace_errors, long_string_attributes)
{
    const char *path = good_trace();
    char s[400];
    memset(s, 'x', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    set_str_attr(path, "source", s);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const char *src = eplb_trace_info(tr)->source;
    cr_assert_eq(strlen(src), 255, "%zu", strlen(src));
    cr_assert(strncmp(src, "xxx", 3) == 0 && strcmp(src + 252, "...") == 0, "%s", src);
    eplb_trace_close(tr);
    s[EPLB_TRACE_MODEL_MAX] = '\0';
    set_str_attr(path, "model", s); /* 127 bytes: kept whole */
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_str_eq(eplb_trace_info(tr)->model, s);
    eplb_trace_close(tr);
    s[EPLB_TRACE_MODEL_MAX] = 'x';
    s[EPLB_TRACE_MODEL_MAX + 1] = '\0';
    set_str_attr(path, "model", s);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "root attribute 'model' is 128 bytes long; at most 127");
    unlink(path);
}

/* Numbers past int64: an unsigned 2^64 - 1 was clamped by HDF5 and named
 * as 9223372036854775807; a float 1e30 went through a cast that is
 * undefined past int64. */
Test(trace_errors, numeric_attributes_past_int64)
{
    const char *path = good_trace();
    const unsigned long long u = 18446744073709551615ull;
    set_attr(path, "num_layers", H5T_STD_U64LE, H5T_NATIVE_ULLONG, &u);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "'num_layers' = 18446744073709551615 is past int64");
    const unsigned long long two = L_; /* an unsigned type in range still reads */
    set_attr(path, "num_layers", H5T_STD_U64LE, H5T_NATIVE_ULLONG, &two);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->num_layers, L_);
    eplb_trace_close(tr);
    const double big = 1e30;
    set_attr(path, "num_layers", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &big);
    assert_open_fails(path, EPLB_ERR_FORMAT, "'num_layers' = 1e+30 is not an integer");
    unlink(path);
}

Test(trace_errors, attribute_out_of_range)
{
    const char *path = good_trace();
    set_int_attr(path, "num_groups", 3); /* does not divide E = 8 */
    assert_open_fails(path, EPLB_ERR_FORMAT, "num_groups");
    unlink(path);
}

/* topk_ids replaced by one with a token less than the logits. */
Test(trace_errors, shape_mismatch)
{
    const char *path = good_trace();
    hid_t f = open_rw(path);
    cr_assert(H5Ldelete(f, "/router/topk_ids", H5P_DEFAULT) >= 0);
    hsize_t dims[3] = {T_ - 1, L_, K_};
    hid_t sp = H5Screate_simple(3, dims, NULL);
    hid_t d = H5Dcreate2(f, "/router/topk_ids", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    cr_assert(d >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    assert_open_fails(path, EPLB_ERR_FORMAT, "/router/topk_ids has shape [19, 2, 2]");
    cr_assert(strstr(eplb_error_last(), "[20, 2, 2]") != NULL, "%s", eplb_error_last());
    unlink(path);
}

Test(trace_errors, offsets_not_increasing)
{
    const char *path = good_trace();
    hsize_t c = 2;
    int64_t v = 1; /* offsets are 0, 5, 10, 15, 20: make index 2 go back */
    eplb_test_h5_poke(path, "/steps/token_offset", &c, H5T_NATIVE_INT64, &v);
    assert_open_fails(path, EPLB_ERR_FORMAT, "/steps/token_offset is decreasing at index 2");
    unlink(path);
}

Test(trace_errors, missing_level)
{
    const char *path = good_trace();
    hid_t f = open_rw(path);
    cr_assert(H5Ldelete(f, "/router/logits", H5P_DEFAULT) >= 0);
    cr_assert(H5Ldelete(f, "/router/topk_ids", H5P_DEFAULT) >= 0);
    cr_assert(H5Ldelete(f, "/load/counts", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    assert_open_fails(path, EPLB_ERR_FORMAT, "no data level");
    unlink(path);
}

/* A top-k picks K different experts: token 13, layer 1 given its first
 * expert twice is refused on read (it would count the token twice for it;
 * found missing by the fuzzing pass). */
Test(trace_errors, ids_repeated_in_a_row)
{
    const char *path = good_trace();
    int32_t ids[T_ * L_ * K_];
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, NULL, 0, T_));
    eplb_trace_close(tr);
    hsize_t c[3] = {13, 1, 1};
    uint8_t v = (uint8_t)ids[(13 * L_ + 1) * K_];
    eplb_test_h5_poke(path, "/router/topk_ids", c, H5T_NATIVE_UINT8, &v);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    char want[128];
    snprintf(want, sizeof want, "/router/topk_ids: token 13 layer 1: expert %d appears twice "
             "in the top-%d", (int)v, K_);
    eplb_assert_fails(eplb_trace_read_topk(tr, ids, NULL, 0, T_), EPLB_ERR_FORMAT, want);
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, NULL, 0, 13));
    eplb_trace_close(tr);
    unlink(path);
}

/* The ids are checked on all cores in parts of 65,536 (token, layer)
 * rows; the message names the first bad row whatever part finds one
 * first: a repeat at token 50000 (row 100000, the second part) and an id
 * out of range at token 20000 (row 40000, the first). */
Test(trace_errors, ids_first_bad_row_named_across_parts)
{
    enum { T = 70000 };
    const char *path = eplb_test_path(eplb_test_tmpdir(), "many.h5");
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("m", "test_trace_errors.c", L_, E_, K_, EPLB_LEVEL_TOPK);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    static int32_t ids[T * L_ * K_];
    for (int i = 0; i < T * L_ * K_; i++)
        ids[i] = (i / K_ + i % K_) % E_; /* K_ different experts a row */
    eplb_assert_ok(eplb_trace_writer_append_step(w, T, NULL, ids, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, NULL, 0, T));
    eplb_trace_close(tr);
    hsize_t c1[3] = {50000, 0, 1}, c2[3] = {20000, 1, 0};
    uint8_t dup = (uint8_t)ids[50000 * L_ * K_], out = E_;
    eplb_test_h5_poke(path, "/router/topk_ids", c1, H5T_NATIVE_UINT8, &dup);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_fails(eplb_trace_read_topk(tr, ids, NULL, 0, T), EPLB_ERR_FORMAT,
                      "token 50000 layer 0: expert");
    eplb_trace_close(tr);
    eplb_test_h5_poke(path, "/router/topk_ids", c2, H5T_NATIVE_UINT8, &out);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_fails(eplb_trace_read_topk(tr, ids, NULL, 0, T), EPLB_ERR_FORMAT,
                      "token 20000 layer 1: expert id 8 outside [0, 8)");
    eplb_trace_close(tr);
    unlink(path);
}

Test(trace_errors, ids_out_of_range)
{
    const char *path = good_trace();
    hsize_t c[3] = {13, 1, 0};
    uint8_t v = E_;
    eplb_test_h5_poke(path, "/router/topk_ids", c, H5T_NATIVE_UINT8, &v);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path)); /* values are checked on read */
    int32_t ids[T_ * L_ * K_];
    eplb_assert_fails(eplb_trace_read_topk(tr, ids, NULL, 0, T_), EPLB_ERR_FORMAT,
                      "/router/topk_ids: token 13 layer 1: expert id 8");
    cr_assert(strstr(eplb_error_last(), path) != NULL);
    /* a range without the bad token reads fine */
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, NULL, 0, 13));
    eplb_trace_close(tr);
    unlink(path);
}

/* A trace cut short while open (the data behind the first 4 KB gone):
 * the parallel reader, whose workers read raw chunks themselves, reports a
 * format error naming the file, the dataset and a chunk; no crash, no data
 * from beyond the end. */
Test(trace_errors, truncated_while_open)
{
    const char *path = good_trace();
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    static float lg[T_ * L_ * E_];
    eplb_assert_ok(eplb_trace_read_logits_parallel(tr, lg, 0, T_, 2));
    cr_assert_eq(truncate(path, 4096), 0);
    eplb_assert_fails(eplb_trace_read_logits_parallel(tr, lg, 0, T_, 2), EPLB_ERR_FORMAT,
                      "/router/logits: chunk at [");
    cr_assert(strstr(eplb_error_last(), path) != NULL, "'%s' does not name the file",
              eplb_error_last());
    eplb_trace_close(tr);
    unlink(path);
}

Test(trace_errors, nan_logits)
{
    const char *path = good_trace();
    hsize_t c[3] = {7, 1, 3};
    float v = NAN;
    eplb_test_h5_poke(path, "/router/logits", c, H5T_NATIVE_FLOAT, &v);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    float lg[T_ * L_ * E_];
    eplb_assert_fails(eplb_trace_read_logits(tr, lg, 5, 10), EPLB_ERR_FORMAT,
                      "/router/logits: token 7 layer 1 expert 3");
    cr_assert(strstr(eplb_error_last(), path) != NULL);
    eplb_assert_fails(eplb_trace_read_logits_parallel(tr, lg, 2, T_, 2), EPLB_ERR_FORMAT,
                      "/router/logits: token 7 layer 1 expert 3");
    cr_assert(strstr(eplb_error_last(), path) != NULL);
    eplb_trace_close(tr);
    unlink(path);
}

/* The parallel reader checks each chunk on its decode thread: a bad value
 * of each logits type, in the middle of a chunk and in the last element of
 * the dataset (past the last whole block of the check), is named exactly as
 * by the serial reader, and ranges without it read fine. */
Test(trace_errors, nonfinite_logits_every_dtype)
{
    enum { L = 3, E = 32, T = 120, TPS2 = 40 };
    const eplb_dtype_t dts[] = {EPLB_DTYPE_F32, EPLB_DTYPE_F16, EPLB_DTYPE_BF16};
    /* Inf and NaN bit patterns of each type */
    const uint32_t inf32 = 0x7f800000u, nan32 = 0x7fc00000u;
    const uint16_t inf16[] = {0x7c00u, 0x7f80u}, nan16[] = {0x7e00u, 0x7fc0u};
    static float lg[TPS2 * L * E];
    static float out[T * L * E];
    for (int di = 0; di < 3; di++) {
        const char *path = eplb_test_path(eplb_test_tmpdir(), "nonfinite.h5");
        eplb_trace_writer_opts_t o =
            eplb_test_writer_opts("m", "test_trace_errors.c", L, E, 2, EPLB_LEVEL_LOGITS);
        o.logits_dtype = dts[di];
        o.chunk_rows = 7;
        eplb_trace_writer_t *w = NULL;
        eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
        for (int i = 0; i < TPS2 * L * E; i++)
            lg[i] = (float)(i % 11) - 5.0f;
        for (int s = 0; s < T / TPS2; s++)
            eplb_assert_ok(eplb_trace_writer_append_step(w, TPS2, lg, NULL, NULL, NULL, NULL, 0));
        eplb_assert_ok(eplb_trace_writer_finish(w));
        hsize_t mid[3] = {61, 2, 17}, last[3] = {T - 1, L - 1, E - 1};
        const void *bad_mid = di == 0 ? (const void *)&inf32 : (const void *)&inf16[di - 1];
        const void *bad_last = di == 0 ? (const void *)&nan32 : (const void *)&nan16[di - 1];
        eplb_test_h5_poke(path, "/router/logits", mid, H5I_INVALID_HID, bad_mid);
        eplb_test_h5_poke(path, "/router/logits", last, H5I_INVALID_HID, bad_last);
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, path));
        eplb_assert_fails(eplb_trace_read_logits_parallel(tr, out, 0, T, 3), EPLB_ERR_FORMAT,
                          "/router/logits: token 61 layer 2 expert 17: NaN or Inf");
        eplb_assert_fails(eplb_trace_read_logits(tr, out, 0, T), EPLB_ERR_FORMAT,
                          "/router/logits: token 61 layer 2 expert 17: NaN or Inf");
        eplb_assert_fails(eplb_trace_read_logits_parallel(tr, out, 62, T, 2), EPLB_ERR_FORMAT,
                          "/router/logits: token 119 layer 2 expert 31: NaN or Inf");
        eplb_assert_ok(eplb_trace_read_logits_parallel(tr, out, 0, 61, 3));
        eplb_assert_ok(eplb_trace_read_logits_parallel(tr, out, 62, T - 1, 3));
        eplb_trace_close(tr);
        unlink(path);
    }
}

Test(trace_errors, negative_counts)
{
    const char *path = good_trace();
    hsize_t c[3] = {2, 0, 5};
    int32_t v = -4;
    eplb_test_h5_poke(path, "/load/counts", c, H5T_NATIVE_INT32, &v);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    int32_t cn[S_ * L_ * E_];
    eplb_assert_fails(eplb_trace_read_counts(tr, cn, 0, S_), EPLB_ERR_FORMAT,
                      "/load/counts: step 2 layer 0 expert 5: negative count -4");
    eplb_trace_close(tr);
    unlink(path);
}

/* A corrupt compressed chunk: both readers fail cleanly, naming the
 * dataset (the parallel one also names the chunk). */
Test(trace_errors, corrupt_chunk)
{
    const char *path = good_trace();
    hid_t f = open_rw(path);
    hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
    hsize_t off[3] = {3, 0, 0}, nbytes = 0;
    cr_assert(H5Dget_chunk_storage_size(d, off, &nbytes) >= 0 && nbytes > 8);
    unsigned char junk[4096];
    memset(junk, 0x77, sizeof junk);
    cr_assert(H5Dwrite_chunk(d, H5P_DEFAULT, 0, off, nbytes < sizeof junk ? nbytes : sizeof junk,
                             junk) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    size_t n = eplb_trace_raw_bytes(tr);
    void *buf = malloc(n);
    eplb_assert_fails(eplb_trace_read_all_serial(tr, buf), EPLB_ERR_FORMAT, "/router/logits");
    eplb_assert_fails(eplb_trace_read_all_parallel(tr, buf, 2), EPLB_ERR_FORMAT,
                      "/router/logits: chunk at [3, 0, 0]");
    eplb_assert_fails(eplb_trace_read_logits(tr, buf, 4, 5), EPLB_ERR_FORMAT, "/router/logits");
    free(buf);
    eplb_trace_close(tr);
    unlink(path);
}

/* A chunk whose deflate data decodes but whose Adler-32 trailer (or zlib
 * header) is wrong: the parallel reader checks both itself (it inflates
 * raw, traces/adler32.c), so it must fail as zlib would; the unchanged
 * chunk written back reads. */
static void rewrite_chunk(const char *path, const hsize_t *off, int byte, int from_end)
{
    hid_t f = open_rw(path);
    hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
    hsize_t nbytes = 0;
    cr_assert(H5Dget_chunk_storage_size(d, off, &nbytes) >= 0 && nbytes > 8);
    unsigned char *raw = malloc(nbytes);
    uint32_t mask = 0;
    cr_assert_not_null(raw);
    cr_assert(H5Dread_chunk(d, H5P_DEFAULT, off, &mask, raw) >= 0);
    if (byte >= 0)
        raw[from_end ? nbytes - 1 - (hsize_t)byte : (hsize_t)byte] ^= 0x01;
    cr_assert(H5Dwrite_chunk(d, H5P_DEFAULT, mask, off, nbytes, raw) >= 0);
    free(raw);
    H5Dclose(d);
    H5Fclose(f);
}

Test(trace_errors, chunk_checksum_and_header)
{
    const hsize_t off[3] = {3, 0, 0};
    static const struct {
        int byte, from_end;
        const char *want;
    } cases[] = {{-1, 0, NULL},                       /* unchanged */
                 {0, 1, "incorrect data check"},      /* the trailer's last byte */
                 {3, 1, "incorrect data check"},      /* its first */
                 {1, 0, "incorrect header check"}};   /* FLG: (CMF FLG) % 31 != 0 */
    /* the reader's own checks, then zlib's (EPLB_ZLIB_CHECK=1, timing) */
    for (int zc = 0; zc < 2; zc++)
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        setenv("EPLB_ZLIB_CHECK", zc ? "1" : "0", 1);
        const char *path = good_trace();
        rewrite_chunk(path, off, cases[c].byte, cases[c].from_end);
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, path));
        size_t n = eplb_trace_raw_bytes(tr);
        void *a = malloc(n), *b = malloc(n);
        cr_assert(a && b);
        if (!cases[c].want) {
            eplb_assert_ok(eplb_trace_read_all_serial(tr, a));
            eplb_assert_ok(eplb_trace_read_all_parallel(tr, b, 2));
            cr_assert_eq(memcmp(a, b, n), 0);
        } else {
            eplb_assert_fails(eplb_trace_read_all_parallel(tr, b, 2), EPLB_ERR_FORMAT,
                              cases[c].want);
            eplb_assert_fails(eplb_trace_read_all_parallel(tr, b, 2), EPLB_ERR_FORMAT,
                              "/router/logits: chunk at [3, 0, 0]");
            eplb_assert_fails(eplb_trace_read_all_serial(tr, a), EPLB_ERR_FORMAT,
                              "/router/logits");
        }
        free(a);
        free(b);
        eplb_trace_close(tr);
        unlink(path);
    }
    unsetenv("EPLB_ZLIB_CHECK");
}

/* The CLI: non-zero exit and a message naming the file, no crash. */
Test(trace_errors, info_cli_bad_files)
{
    char *out = NULL;
    const char *dir = eplb_test_tmpdir();
    const char *missing = eplb_test_path(dir, "missing.h5");
    int rc = eplb_test_run_cli(&out, "info '%s'", missing);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, out);
    cr_assert(strstr(out, "eplb-replay info: ") && strstr(out, missing), "%s", out);
    free(out);

    const char *text = eplb_test_path(dir, "text.h5");
    FILE *f = fopen(text, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    rc = eplb_test_run_cli(&out, "info '%s' --json", text);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, out);
    cr_assert(strstr(out, text) && strstr(out, "not an HDF5 file"), "%s", out);
    free(out);
    unlink(text);

    const char *bad = good_trace();
    set_int_attr(bad, "eplb_trace_version", 7);
    rc = eplb_test_run_cli(&out, "info '%s'", bad);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, out);
    cr_assert(strstr(out, bad) && strstr(out, "eplb_trace_version"), "%s", out);
    free(out);
    unlink(bad);
}

/* The probe's child opens a valid trace and looks up every chunk of its
 * chunked datasets to the end (exit 0).  Until 2026-11-28 it passed
 * H5S_ALL to H5Dget_num_chunks, which HDF5 1.10 refuses: the child exited
 * 1 at the first chunked dataset, having looked up no chunk, and the open
 * went on unprobed.  The third time the pool's helpers are running (asleep)
 * when it probes: it probes all the same (before, any thread but one
 * turned the probe off, so a second open in a process that had run a
 * parallel loop was never probed). */
static void spin(void *ctx, int i) { (void)ctx, (void)i; }

Test(trace_errors, probe_walks_valid_traces)
{
    const char *good = good_trace();
    char shipped[600];
    snprintf(shipped, sizeof shipped, "%s/traces/esft-intent.h5", eplb_test_srcdir());
    const char *paths[] = {good, shipped, shipped};
    for (int i = 0; i < 3; i++) {
        /* from a forked child of this test, which has one thread (the
         * runner's process has more, and then nothing is probed); no
         * other thread of the runner calls HDF5 */
        fflush(NULL);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            if (i == 2) {
                eplb_pool_run(64, 4, spin, NULL);
                if (eplb_pool_helpers() < 1)
                    _exit(254);
            }
            _exit(eplb_trace_probe_run(paths[i]) & 0xff);
        }
        int ws = 0;
        cr_assert_eq(waitpid(pid, &ws, 0), pid);
        cr_assert(WIFEXITED(ws), "%s: status %d", paths[i], ws);
        cr_assert_eq(WEXITSTATUS(ws), 0,
                     "%s, case %d: probe %d (255: none ran, 1: the child failed, 254: no "
                     "helpers)",
                     paths[i], i, WEXITSTATUS(ws));
    }
    unlink(good);
}

/* A variable-length string attribute is a reference into the file's
 * global heap (HDF5 file format: 4-byte length, 8-byte collection address,
 * 4-byte object index).  A copy of good (PATH.SUFFIX.h5) with its first variable-length string
 * reference into the global heap changed: the object index set far past
 * the collection's objects (what = 0), or the length set to 2^32 - 1
 * (what = 1). */
static char *corrupt_heap_ref(const char *good, int what)
{
    FILE *in = fopen(good, "rb");
    cr_assert(in);
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    cr_assert_eq(fread(b, 1, (size_t)n, in), (size_t)n);
    fclose(in);
    long g = -1; /* the first global heap collection ("GCOL" signature) */
    for (long i = 0; i + 4 <= n && g < 0; i++)
        if (!memcmp(b + i, "GCOL", 4))
            g = i;
    cr_assert(g > 0, "%s has no global heap: the writer's string attributes changed?", good);
    int hits = 0;
    for (long i = 4; i + 12 <= n && !hits; i++) {
        uint64_t a = 0;
        uint32_t len = 0, idx = 0;
        for (int k = 7; k >= 0; k--)
            a = a << 8 | b[i + k];
        for (int k = 3; k >= 0; k--)
            len = len << 8 | b[i - 4 + k], idx = idx << 8 | b[i + 8 + k];
        if (a == (uint64_t)g && len > 0 && len < 4096 && idx >= 1 && idx < 64) {
            uint32_t bad = what ? 0xffffffffu : idx | 1u << 20;
            unsigned char *at = what ? b + i - 4 : b + i + 8;
            for (int k = 0; k < 4; k++)
                at[k] = (unsigned char)(bad >> 8 * k);
            hits = 1;
        }
    }
    cr_assert(hits, "no heap reference to offset %ld found in %s", g, good);
    static char path[600];
    snprintf(path, sizeof path, "%s.%s.h5", good, what ? "len" : "heap");
    eplb_test_write_bytes(path, b, (size_t)n);
    free(b);
    return path;
}

/* A string reference with its length set to 2^32 - 1: HDF5 allocates that length before
 * it reads the string, 4 GB in the probe and again in the open, 27 s, and
 * then the command went on (exit 0).  The probe's child may use 2 GiB
 * more than the process had: the file is refused at once. */
#if !defined(__SANITIZE_ADDRESS__)
/* (not in AddressSanitizer builds: its allocator dies on the failed
 * allocation instead of returning NULL; and cr_skip_test there, in this
 * test with a .timeout, leaked 48 bytes in Criterion's runner when later
 * tests followed, failing the leak check of the whole run; the suites'
 * other skips, in tests without a timeout, leak nothing) */
Test(trace_errors, string_attribute_length_corrupt, .timeout = 30)
{
    const char *good = good_trace();
    const char *bad = corrupt_heap_ref(good, 1);
    char want[800];
    snprintf(want, sizeof want,
             "%s: corrupt HDF5 metadata: opening it needs more than 2 GiB of memory", bad);
    eplb_test_cli_expect(1, want, "info '%s'", bad);
    /* where memory is short for another reason (here RLIMIT_DATA, inherited
     * by the command), the file is not blamed: the open says what failed
     * (a review found such a valid file of 2^26 steps called corrupt) */
    struct rlimit rl = {(rlim_t)700 << 20, (rlim_t)700 << 20};
    cr_assert_eq(setrlimit(RLIMIT_DATA, &rl), 0);
    char *msg = NULL;
    int rc = eplb_test_run_cli(&msg, "info '%s'", bad);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, msg);
    cr_assert(strstr(msg, "allocation failed") && !strstr(msg, "needs more than 2 GiB"), "%s",
              msg);
    free(msg);
    unlink(bad);
    unlink(good);
}
#endif

/* With an object index far past the collection's objects, HDF5 1.10.8's
 * H5HG_read dies of SIGSEGV reading it (tests/fuzz/trace_fuzz.sh found
 * this; with EPLB_TRACE_PROBE=0 this test crashes there; an address past
 * the end of the file, or an index a little past the last object, fails
 * or reads cleanly).  The probe (traces/probe.c) opens the file in a child
 * first: the CLI must exit 1 naming the file. */
Test(trace_errors, heap_index_out_of_range)
{
    const char *good = good_trace();
    const char *bad = corrupt_heap_ref(good, 0);
    char *out = NULL;
    for (int c = 0; c < 2; c++) {
        int rc = eplb_test_run_cli(&out, c ? "run '%s' --quiet --policy-time 0" : "info '%s'",
                                   bad);
        cr_assert_eq(rc, 1, "%s: rc %d (-1: crashed): %s", c ? "run" : "info", rc, out);
        cr_assert(strstr(out, bad) != NULL, "message does not name %s: %s", bad, out);
        free(out);
    }
    /* the valid file it was made from opens through the probe */
    int rc = eplb_test_run_cli(&out, "info '%s'", good);
    cr_assert_eq(rc, 0, "info on the valid file: rc %d: %s", rc, out);
    free(out);
    unlink(bad);
    unlink(good);
}

/* A copy of good (PATH.loop.h5) whose global heap's object 0 (its free
 * space) has size 0, on which HDF5 1.10.8 loops for ever reading a string
 * attribute (see probe_time_limit for the format). */
static const char *heap_loop_copy(const char *good)
{
    size_t n = 0;
    unsigned char *b = eplb_test_slurp(good, &n);
    size_t g = 0; /* the first collection */
    while (g + 4 <= n && memcmp(b + g, "GCOL", 4) != 0)
        g++;
    cr_assert(g + 4 <= n, "%s has no global heap: the writer's string attributes changed?", good);
    size_t at = g + 16; /* object 0: its header */
    for (;;) {
        cr_assert(at + 16 <= n && at < g + 4096, "%s: no free space in the heap at %zu", good, g);
        uint64_t size = 0;
        for (int k = 7; k >= 0; k--)
            size = size << 8 | b[at + 8 + k];
        if (b[at] == 0 && b[at + 1] == 0)
            break;
        cr_assert(size < 4096, "%s: heap object at %zu of %llu bytes", good, at,
                  (unsigned long long)size);
        at += 16 + (size + 7) / 8 * 8;
    }
    memset(b + at + 8, 0, 8);
    static char bad[600];
    snprintf(bad, sizeof bad, "%s.loop.h5", good);
    eplb_test_write_bytes(bad, b, n);
    free(b);
    return bad;
}

/* Where a probe's time limit fails, the children this test starts die of
 * SIGXCPU after 10 s of CPU rather than spin on after the test. */
static void cpu_limit_10s(void)
{
    struct rlimit cpu;
    cr_assert_eq(getrlimit(RLIMIT_CPU, &cpu), 0);
    if (cpu.rlim_cur == RLIM_INFINITY || cpu.rlim_cur > 10) {
        cpu.rlim_cur = cpu.rlim_max != RLIM_INFINITY && cpu.rlim_max < 10 ? cpu.rlim_max : 10;
        cr_assert_eq(setrlimit(RLIMIT_CPU, &cpu), 0);
    }
}

/* A global-heap object of index 0 and size 0 (HDF5 file format: a
 * collection is "GCOL", a version byte, 3 reserved bytes and its 8-byte
 * size, then objects of a 2-byte index, 2-byte reference count, 4 reserved
 * bytes, an 8-byte size and the data, padded to 8 bytes; the size of
 * object 0, the free space, counts its header too).  HDF5 1.10.8 parses the
 * collection to read a string attribute (H5HG_read from H5Aread) going
 * from one object to the next by its size: at object 0 of size 0 it stays
 * where it is for ever, and the probe's child with it; the parent waited
 * for the child for ever (info, run and bench io hung; an audit found it,
 * zeroing object 1's size, which led the parse into the zeros of the free
 * space).  The probe kills the child after EPLB_TRACE_PROBE_TIMEOUT
 * seconds: the CLI exits 1 naming the file, in about that time. */
Test(trace_errors, probe_time_limit)
{
    /* a hang fails the test (SIGALRM): Criterion's .timeout leaked 48 bytes
     * in the runner for a test this long, which the sanitizer build's leak
     * check fails */
    alarm(60);
    const char *good = good_trace();
    const char *bad = heap_loop_copy(good);
    cpu_limit_10s();
    cr_assert_eq(setenv("EPLB_TRACE_PROBE_TIMEOUT", "1", 1), 0);
    char want[800];
    snprintf(want, sizeof want,
             "%s: opening it did not finish in 1 s: corrupt HDF5 metadata (the HDF5 library "
             "looping)?",
             bad);
    const char *cmds[] = {"info '%s'", "run '%s' --quiet --policy-time 0", "bench io '%s'"};
    for (int c = 0; c < 3; c++) {
        const time_t t0 = time(NULL);
        eplb_test_cli_expect(1, want, cmds[c], bad);
        const double s = difftime(time(NULL), t0);
        cr_assert(s < 8, "%s: %.0f s for a limit of 1 s", cmds[c], s);
    }
    /* the valid file it was made from opens under the same limit */
    eplb_test_cli_expect(0, NULL, "info '%s'", good);
    unsetenv("EPLB_TRACE_PROBE_TIMEOUT");
    unlink(bad);
    unlink(good);
}

static void on_alarm(int sig) { (void)sig; }

/* The time limit holds while signals interrupt the wait: a process whose
 * SIGALRM handler (no SA_RESTART) runs every 20 ms still has the looping
 * child killed at the 1 s limit (3).  Mutation testing: giving up the
 * wait on EINTR (no kill, the child left to spin) passed. */
Test(trace_errors, probe_time_limit_through_signals)
{
    alarm(60); /* a hang fails the test (see probe_time_limit) */
    const char *good = good_trace();
    const char *bad = heap_loop_copy(good);
    cpu_limit_10s();
    cr_assert_eq(setenv("EPLB_TRACE_PROBE_TIMEOUT", "1", 1), 0);
    fflush(NULL);
    const time_t t0 = time(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* one thread, as the probe wants; no alarm of the parent's */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigemptyset(&sa.sa_mask);
        struct itimerval it = {{0, 20000}, {0, 20000}};
        if (sigaction(SIGALRM, &sa, NULL) != 0 || setitimer(ITIMER_REAL, &it, NULL) != 0)
            _exit(250);
        _exit(eplb_trace_probe_run(bad) & 0xff);
    }
    int ws = 0;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_assert(WIFEXITED(ws), "status %d", ws);
    cr_assert_eq(WEXITSTATUS(ws), 3, "probe %d, want 3 (the time limit)", WEXITSTATUS(ws));
    const double sec = difftime(time(NULL), t0);
    cr_assert(sec < 8, "%.0f s for a limit of 1 s", sec);
    unsetenv("EPLB_TRACE_PROBE_TIMEOUT");
    alarm(0);
    unlink(bad);
    unlink(good);
}

/* Found by the tenth session's sweep: top_k above the experts of the kept
 * groups (16 experts in 16 groups, 1 kept: 1 expert for top_k = 2) passed
 * the open and failed later as a usage error without the file's name (or
 * not at all for topk-only traces). */
Test(trace_errors, top_k_beyond_kept_groups)
{
    const char *path = good_trace(); /* E = 8, K = 2 */
    set_int_attr(path, "num_groups", 8);
    set_int_attr(path, "topk_groups", 1);
    assert_open_fails(path, EPLB_ERR_FORMAT, "'top_k' = 2 exceeds the 1 experts of the kept");
    set_int_attr(path, "topk_groups", 2); /* 2 experts kept: enough */
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_trace_close(tr);
    unlink(path);
}

/* Found by the sweep: one corrupt byte in a dataset's layout message (a
 * chunk dimension past the dataset's fixed one) made H5Dread crash with
 * SIGSEGV.  The layout message of a chunked dataset (HDF5 file format,
 * version 3) holds the chunk's dimensions as 4-byte little-endian numbers
 * followed by the element size: [3, 2, 8, 4] for good_trace's float32
 * logits (chunks of 3 rows, 2 layers, 8 experts).  The layer dimension
 * set to 39170 (the sweep's value) must fail the open, naming the file
 * and the dataset. */
Test(trace_errors, chunk_dimension_past_the_dataset)
{
    const char *good = good_trace();
    size_t n = 0;
    unsigned char *b = eplb_test_slurp(good, &n);
    const uint32_t want[4] = {3, L_, E_, 4};
    long at = -1;
    for (size_t i = 0; i + 16 <= n && at < 0; i++) {
        int same = 1;
        for (int k = 0; k < 4 && same; k++)
            same = (uint32_t)(b[i + 4 * k] | b[i + 4 * k + 1] << 8 | b[i + 4 * k + 2] << 16 |
                              (uint32_t)b[i + 4 * k + 3] << 24) == want[k];
        if (same)
            at = (long)i;
    }
    cr_assert(at >= 0, "no chunk layout [3, %d, %d, 4] in %s", L_, E_, good);
    const uint32_t bad = 39170;
    for (int k = 0; k < 4; k++)
        b[at + 4 + k] = (unsigned char)(bad >> 8 * k);
    char path[600];
    snprintf(path, sizeof path, "%s.layout.h5", good);
    eplb_test_write_bytes(path, b, n);
    free(b);
    assert_open_fails(path, EPLB_ERR_FORMAT, "/router/logits: chunk dimension 1 is 39170");
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --quiet --policy-time 0", path);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, out);
    free(out);
    unlink(path);
    unlink(good);
}

/* ---- storage and size limits (the second fuzzing pass) ------------------ */

/* Delete the link `name` of path if present. */
static void drop(const char *path, const char *name)
{
    hid_t f = open_rw(path);
    if (H5Lexists(f, name, H5P_DEFAULT) > 0)
        cr_assert(H5Ldelete(f, name, H5P_DEFAULT) >= 0, "cannot delete %s", name);
    H5Fclose(f);
}

/* Replace dataset `name` of path by one of file type ft and shape
 * dims[rank] (maxd NULL: fixed), chunked as chunk[rank] (NULL: contiguous,
 * or the layout of dcpl if dcpl >= 0), holding data of memory type mt if
 * data is not NULL (else never written: HDF5 allocates nothing). */
static void put_dataset(const char *path, const char *name, hid_t ft, int rank,
                        const hsize_t *dims, const hsize_t *maxd, const hsize_t *chunk,
                        hid_t dcpl, hid_t mt, const void *data)
{
    drop(path, name);
    hid_t f = open_rw(path);
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    hid_t pl = dcpl >= 0 ? H5Pcopy(dcpl) : H5Pcreate(H5P_DATASET_CREATE);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (chunk)
        cr_assert(H5Pset_chunk(pl, rank, chunk) >= 0);
    hid_t d = H5Dcreate2(f, name, ft, sp, lcpl, pl, H5P_DEFAULT);
    cr_assert(d >= 0, "cannot create %s in %s", name, path);
    if (data)
        cr_assert(H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(pl);
    H5Sclose(sp);
    H5Fclose(f);
}

/* good_trace() reduced to /steps/token_offset = offs[n] and no data level. */
static const char *bare_trace(const int64_t *offs, hsize_t n)
{
    const char *path = good_trace();
    const char *names[] = {"/router/logits", "/router/topk_ids", "/router/topk_weights",
                           "/load/counts",   "/steps/phase",     "/tokens/src_rank"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        drop(path, names[i]);
    put_dataset(path, "/steps/token_offset", H5T_STD_I64LE, 1, &n, NULL, NULL, -1,
                H5T_NATIVE_INT64, offs);
    return path;
}

/* Found by the second fuzzing pass: a trace declaring 2^62 tokens (an
 * unwritten contiguous topk_ids) crashed the replay (SIGSEGV: sizes
 * wrapped) and `info` hung; one step of 1e7 tokens in a 10 KB file made
 * `run` grow past 17.9 GB.  T is bounded (2^39), and a step's top-k ids in
 * a trace with per-token data (tokens x L x K x 4 bytes) to 2 GiB. */
Test(trace_errors, huge_declared_token_counts, .timeout = 20)
{
    const int64_t huge[2] = {0, (int64_t)1 << 41};
    char path[600];
    snprintf(path, sizeof path, "%s", bare_trace(huge, 2));
    hsize_t dims[3] = {(hsize_t)1 << 41, L_, K_};
    put_dataset(path, "/router/topk_ids", H5T_STD_U8LE, 3, dims, NULL, NULL, -1, -1, NULL);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/steps/token_offset: T = token_offset[1] = 2199023255552 tokens; at "
                      "most 549755813888");
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --quiet --json --policy-time 0", path);
    cr_assert_eq(rc, 1, "rc %d (-1: crashed): %s", rc, out);
    cr_assert(strstr(out, path) && strstr(out, "T = token_offset[1]"), "%s", out);
    free(out);
    unlink(path);

    /* one step of 2^28 tokens x 2 layers x top-2 x 4 bytes: 4 GiB of ids */
    const int64_t step[2] = {0, (int64_t)1 << 28};
    snprintf(path, sizeof path, "%s", bare_trace(step, 2));
    dims[0] = (hsize_t)1 << 28;
    put_dataset(path, "/router/topk_ids", H5T_STD_U8LE, 3, dims, NULL, NULL, -1, -1, NULL);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/steps/token_offset: step 0 has 268435456 tokens; at most 134217728");
    rc = eplb_test_run_cli(&out, "info '%s'", path);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, out);
    free(out);
    /* a counts-only trace holds no per-token data: such a step is fine */
    drop(path, "/router/topk_ids");
    int32_t zeros[L_ * E_] = {0};
    hsize_t cd[3] = {1, L_, E_};
    put_dataset(path, "/load/counts", H5T_STD_I32LE, 3, cd, NULL, NULL, -1, H5T_NATIVE_INT32,
                zeros);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->num_tokens, (int64_t)1 << 28);
    eplb_trace_close(tr);
    unlink(path);
}

/* Each token picks at most top_k experts, so a layer's counts in a step sum
 * to at most top_k x the step's tokens: a row over that is refused, naming
 * the step and the layer; a row under it (dropped tokens, imported run
 * totals) reads. */
Test(trace_errors, counts_row_over_top_k_x_tokens)
{
    const char *path = good_trace();
    eplb_trace_t *tr = NULL;
    int32_t cn[S_ * L_ * E_];
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_counts(tr, cn, 0, S_)); /* every row is 2 x 5 */
    eplb_trace_close(tr);
    /* step 1 layer 1 expert 3 one more: that row sums to 11 */
    hsize_t c[3] = {1, 1, 3};
    int32_t v = cn[(1 * L_ + 1) * E_ + 3] + 1;
    eplb_test_h5_poke(path, "/load/counts", c, H5T_NATIVE_INT32, &v);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_fails(eplb_trace_read_counts(tr, cn, 0, S_), EPLB_ERR_FORMAT,
                      "/load/counts: step 1 layer 1: counts sum to 11, more than top_k x "
                      "tokens = 2 x 5 = 10");
    cr_assert(strstr(eplb_error_last(), path) != NULL, "%s", eplb_error_last());
    eplb_assert_fails(eplb_trace_read_counts(tr, cn, 1, 2), EPLB_ERR_FORMAT, "step 1 layer 1");
    eplb_assert_ok(eplb_trace_read_counts(tr, cn, 0, 1)); /* the other steps read */
    eplb_assert_ok(eplb_trace_read_counts(tr, cn, 2, S_));
    eplb_trace_close(tr);
    /* under the bound: the expert at 0 (the row sums to less than 10) */
    v = 0;
    eplb_test_h5_poke(path, "/load/counts", c, H5T_NATIVE_INT32, &v);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_counts(tr, cn, 0, S_));
    cr_assert_eq(cn[(1 * L_ + 1) * E_ + 3], 0);
    eplb_trace_close(tr);
    unlink(path);

    /* a step of no tokens holds no count; the step before, exactly at the
     * bound, reads */
    const int64_t offs[3] = {0, TPS, TPS};
    char p2[600];
    snprintf(p2, sizeof p2, "%s", bare_trace(offs, 3));
    int32_t two[2 * L_ * E_] = {0};
    for (int l = 0; l < L_; l++)
        two[l * E_ + l] = K_ * TPS;
    two[L_ * E_ + E_ + 7] = 1; /* step 1 layer 1 */
    hsize_t cd[3] = {2, L_, E_};
    put_dataset(p2, "/load/counts", H5T_STD_I32LE, 3, cd, NULL, NULL, -1, H5T_NATIVE_INT32,
                two);
    eplb_assert_ok(eplb_trace_open(&tr, p2));
    eplb_assert_ok(eplb_trace_read_counts(tr, two, 0, 1));
    eplb_assert_fails(eplb_trace_read_counts(tr, two, 0, 2), EPLB_ERR_FORMAT,
                      "/load/counts: step 1 layer 1: counts sum to 1, more than top_k x "
                      "tokens = 2 x 0 = 0");
    eplb_trace_close(tr);
    unlink(p2);
}

/* Found by the pass: /steps/token_offset was read whole before any check
 * (an unwritten one of 2^29 entries: 4 GB, then a shape error).  Its
 * length is checked against the bound on S (2^26 steps) first. */
Test(trace_errors, token_offset_length_before_read, .timeout = 20)
{
    const char *path = good_trace();
    hsize_t n = ((hsize_t)1 << 26) + 2, mx = H5S_UNLIMITED, cd = (hsize_t)1 << 16;
    put_dataset(path, "/steps/token_offset", H5T_STD_I64LE, 1, &n, &mx, &cd, -1, -1, NULL);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/steps/token_offset has 67108866 entries: 67108865 steps; at most "
                      "67108864");
    unlink(path);
}

/* Found by the pass: a virtual dataset mapped onto itself crashed H5Dread
 * (SIGSEGV, stack overflow), one whose source file is missing read as
 * zeros (exit 0), and external raw storage read any file of the host
 * (zero-padded) or blocked on a FIFO.  Only compact, contiguous and
 * chunked storage in the trace's own file is accepted. */
Test(trace_errors, virtual_and_external_storage_refused, .timeout = 20)
{
    const hsize_t dims[3] = {T_, L_, E_};
    for (int c = 0; c < 3; c++) {
        char path[600];
        snprintf(path, sizeof path, "%s", good_trace());
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        hid_t sp = H5Screate_simple(3, dims, NULL);
        if (c < 2)
            cr_assert(H5Pset_virtual(dcpl, sp, c == 0 ? "." : "/nonexistent/eplb-src.h5",
                                     "/router/logits", sp) >= 0);
        else
            cr_assert(H5Pset_external(dcpl, "/etc/hostname", 0, H5F_UNLIMITED) >= 0);
        put_dataset(path, "/router/logits", H5T_IEEE_F32LE, 3, dims, NULL, NULL, dcpl, -1,
                    NULL);
        H5Sclose(sp);
        H5Pclose(dcpl);
        assert_open_fails(path, EPLB_ERR_FORMAT,
                          c < 2 ? "/router/logits: virtual (VDS) storage layout"
                                : "/router/logits: raw data in external files (1)");
        char *out = NULL;
        int rc = eplb_test_run_cli(&out, "run '%s' --quiet --policy-time 0", path);
        cr_assert_eq(rc, 1, "case %d: rc %d (-1: crashed): %s", c, rc, out);
        cr_assert(strstr(out, path) && strstr(out, "/router/logits"), "%s", out);
        free(out);
        unlink(path);
    }
}

/* Found by the pass: an external link at /router/logits to a FIFO blocked
 * every command for ever (in H5Oexists_by_name), and one to another file
 * read that file.  Links are looked at before they are followed: external
 * ones are refused, for a dataset or a group on the way, and through a
 * soft link too; soft links within the file still work. */
Test(trace_errors, external_links_refused, .timeout = 20)
{
    const char *dir = eplb_test_tmpdir();
    char fifo[600], other[600];
    snprintf(fifo, sizeof fifo, "%s", eplb_test_path(dir, "fifo"));
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *g = good_trace();
    snprintf(other, sizeof other, "%s.other.h5", g);
    cr_assert_eq(rename(g, other), 0);
    for (int c = 0; c < 4; c++) {
        char path[600];
        snprintf(path, sizeof path, "%s", good_trace());
        hid_t f = open_rw(path);
        if (c == 0) { /* the dataset, to a FIFO */
            cr_assert(H5Ldelete(f, "/router/logits", H5P_DEFAULT) >= 0);
            cr_assert(H5Lcreate_external(fifo, "/x", f, "/router/logits", H5P_DEFAULT,
                                         H5P_DEFAULT) >= 0);
        } else { /* the group: directly, through a soft link, or a soft link only */
            cr_assert(H5Lmove(f, "/router", f, "/r0", H5P_DEFAULT, H5P_DEFAULT) >= 0);
            if (c == 1)
                cr_assert(H5Lcreate_external(other, "/router", f, "/router", H5P_DEFAULT,
                                             H5P_DEFAULT) >= 0);
            if (c == 2) {
                cr_assert(H5Lcreate_external(other, "/", f, "/ext", H5P_DEFAULT,
                                             H5P_DEFAULT) >= 0);
                cr_assert(H5Lcreate_soft("ext/router", f, "/router", H5P_DEFAULT,
                                         H5P_DEFAULT) >= 0);
            }
            if (c == 3)
                cr_assert(H5Lcreate_soft("/r0", f, "/router", H5P_DEFAULT, H5P_DEFAULT) >= 0);
        }
        H5Fclose(f);
        if (c == 3) {
            eplb_trace_t *tr = NULL;
            eplb_assert_ok(eplb_trace_open(&tr, path));
            cr_assert_eq(eplb_trace_info(tr)->levels,
                         EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS);
            eplb_trace_close(tr);
        } else {
            assert_open_fails(path, EPLB_ERR_FORMAT,
                              c == 2 ? "/ext is an external link" : "is an external link");
            char *out = NULL;
            int rc = eplb_test_run_cli(&out, "info '%s'", path);
            cr_assert_eq(rc, 1, "case %d: rc %d: %s", c, rc, out);
            cr_assert(strstr(out, path) && strstr(out, "external link"), "%s", out);
            free(out);
        }
        unlink(path);
    }
    unlink(other);
    unlink(fifo);
}

/* Found by the pass: a 10 KB file can declare an extent of unwritten
 * chunks (here 2^32 slots of 4 KiB, none written), which HDF5 reads as
 * zeros: the probe looked up every slot (1.7e9 for one file: it hung), and
 * `run` would have walked 2^38 tokens routed to expert 0.  Such a dataset,
 * or one with any chunk of its extent unwritten (an unfinished recording),
 * or a contiguous one never written, is refused at open, counting the
 * allocated chunks only. */
/* /router/topk_ids rows t0 .. t0 + count[0] of path written from ids */
static void write_ids_chunk(const char *path, hsize_t t0, const hsize_t count[3],
                            const void *ids)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/router/topk_ids", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(3, count, NULL);
    const hsize_t start[3] = {t0, 0, 0};
    cr_assert(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0);
    cr_assert(H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, ids) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
}

Test(trace_errors, unwritten_data_refused, .timeout = 20)
{
    enum { STEPS = 2048 };
    static int64_t offs[STEPS + 1];
    for (int s = 0; s <= STEPS; s++)
        offs[s] = (int64_t)s << 27; /* 2^27 tokens a step: at the bound for L 2, K 2 */
    char path[600];
    snprintf(path, sizeof path, "%s", bare_trace(offs, STEPS + 1));
    hsize_t dims[3] = {(hsize_t)1 << 38, L_, E_}, mx[3] = {H5S_UNLIMITED, L_, E_},
            cd[3] = {64, L_, E_};
    put_dataset(path, "/router/logits", H5T_IEEE_F32LE, 3, dims, mx, cd, -1, -1, NULL);
    char want[800];
    snprintf(want, sizeof want,
             "%s: /router/logits: 4294967296 of its 4294967296 chunks were never written", path);
    eplb_test_cli_expect(1, want, "info '%s' --no-skew", path);
    unlink(path);

    /* the last of two chunks unwritten */
    const int64_t two[2] = {0, 128};
    snprintf(path, sizeof path, "%s", bare_trace(two, 2));
    hsize_t d2[3] = {128, L_, K_}, m2[3] = {H5S_UNLIMITED, L_, K_}, c2[3] = {64, L_, K_};
    put_dataset(path, "/router/topk_ids", H5T_STD_I32LE, 3, d2, m2, c2, -1, -1, NULL);
    static int32_t ids[64][L_][K_];
    for (int t = 0; t < 64; t++)
        for (int l = 0; l < L_; l++)
            for (int k = 0; k < K_; k++)
                ids[t][l][k] = k;
    write_ids_chunk(path, 0, c2, ids);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/router/topk_ids: 1 of its 2 chunks were never written");
    /* both written: opens */
    write_ids_chunk(path, 64, c2, ids);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_trace_close(tr);

    /* contiguous, never written */
    put_dataset(path, "/router/topk_ids", H5T_STD_I32LE, 3, d2, NULL, NULL, -1, -1, NULL);
    assert_open_fails(path, EPLB_ERR_FORMAT, "/router/topk_ids: its data were never written");
    unlink(path);
}

/* Found by the pass: topk_ids rewritten in chunks of one element (1.3 MB
 * of ids: 18 s and 8 GB in HDF5's per-chunk bookkeeping), and one chunk of
 * 3.6 GB (3.75 GB resident for any read).  Chunks are 4 KiB to 256 MiB;
 * smaller ones only in datasets of at most 2^17 chunks (h5py gives one-row
 * chunks to a dataset created from one row with an unlimited first
 * dimension: a review found 4096 too few for such recorders). */
Test(trace_errors, chunk_size_bounds, .timeout = 20)
{
    const int64_t offs[2] = {0, 65536};
    char path[600];
    snprintf(path, sizeof path, "%s", bare_trace(offs, 2));
    hsize_t dims[3] = {65536, L_, K_}, mx[3] = {H5S_UNLIMITED, L_, K_}, one[3] = {1, 1, 1},
            row[3] = {1, L_, K_};
    put_dataset(path, "/router/topk_ids", H5T_STD_U8LE, 3, dims, mx, one, -1, -1, NULL);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/router/topk_ids: 262144 chunks of [1, 1, 1] elements, 1 bytes each");
    /* 65536 chunks of 4 bytes: few enough */
    static uint8_t ids[65536][L_][K_];
    for (int t = 0; t < 65536; t++)
        for (int l = 0; l < L_; l++)
            for (int k = 0; k < K_; k++)
                ids[t][l][k] = (uint8_t)k;
    put_dataset(path, "/router/topk_ids", H5T_STD_U8LE, 3, dims, mx, row, -1, H5T_NATIVE_UINT8,
                ids);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_trace_close(tr);
    /* a chunk of 2^23 x 2 x 8 float32: 512 MiB */
    hsize_t ld[3] = {65536, L_, E_}, lmx[3] = {H5S_UNLIMITED, L_, E_},
            big[3] = {(hsize_t)1 << 23, L_, E_};
    put_dataset(path, "/router/logits", H5T_IEEE_F32LE, 3, ld, lmx, big, -1, -1, NULL);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/router/logits: chunks of [8388608, 2, 8] elements are 536870912 bytes; "
                      "at most 268435456");
    unlink(path);
}

/* Found by the pass: routed_scaling_factor was checked as a double and
 * then narrowed to float: 1e39 became Inf and 1e-320 0, both accepted. */
Test(trace_errors, scaling_factor_checked_as_float)
{
    const double bad[] = {1e39, 1e-320, -1e-320};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = good_trace();
        set_attr(path, "routed_scaling_factor", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &bad[i]);
        assert_open_fails(path, EPLB_ERR_FORMAT, "'routed_scaling_factor' = ");
        unlink(path);
    }
    const char *path = good_trace();
    const double ok = 3e38;
    set_attr(path, "routed_scaling_factor", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &ok);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_float_eq(eplb_trace_info(tr)->route.routed_scaling_factor, 3e38f, 1e32f);
    eplb_trace_close(tr);
    unlink(path);
}

/* Found by the pass: `info` printed the model and source attributes raw,
 * so escape sequences, CR and newlines in them rewrote the terminal or
 * faked lines of the description.  Control characters print as \xNN. */
Test(trace_errors, info_escapes_control_characters)
{
    const char *path = good_trace();
    set_str_attr(path, "model", "m\x1b[2J\rX");
    set_str_attr(path, "source", "one\ntrace        fake\x7f");
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "info '%s' --no-skew", path);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, out);
    cr_assert(!strchr(out, '\x1b') && !strchr(out, '\r') && !strchr(out, '\x7f'), "%s", out);
    cr_assert(strstr(out, "model        m\\x1b[2J\\x0dX\n"), "%s", out);
    cr_assert(strstr(out, "source       one\\x0atrace        fake\\x7f\n"), "%s", out);
    free(out);
    unlink(path);
}

/* The top-k weights, read only where asked for (no command of the program
 * reads them: the library's check had no test; mutation testing: isnan
 * for !isfinite passed).  +Inf and NaN are refused, naming the token and
 * layer; a finite weight reads back as written. */
Test(trace_errors, topk_weight_nan_inf_refused)
{
    const char *path = good_trace();
    int32_t ids[T_ * L_ * K_];
    float w[T_ * L_ * K_];
    for (int i = 0; i < T_ * L_ * K_; i++)
        w[i] = 0.5f;
    hsize_t dims[3] = {T_, L_, K_};
    put_dataset(path, "/router/topk_weights", H5T_IEEE_F32LE, 3, dims, NULL, NULL, -1,
                H5T_NATIVE_FLOAT, w);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, w, 0, T_));
    eplb_trace_close(tr);
    const float bad[2] = {INFINITY, NAN};
    for (int i = 0; i < 2; i++) {
        hsize_t c[3] = {7, 1, 0};
        eplb_test_h5_poke(path, "/router/topk_weights", c, H5T_NATIVE_FLOAT, &bad[i]);
        eplb_assert_ok(eplb_trace_open(&tr, path));
        eplb_assert_fails(eplb_trace_read_topk(tr, ids, w, 0, T_), EPLB_ERR_FORMAT,
                          "/router/topk_weights: token 7 layer 1: NaN or Inf weight");
        eplb_assert_ok(eplb_trace_read_topk(tr, ids, NULL, 0, T_)); /* ids alone: fine */
        eplb_trace_close(tr);
    }
    const float fine = 0.25f;
    hsize_t c[3] = {7, 1, 0};
    eplb_test_h5_poke(path, "/router/topk_weights", c, H5T_NATIVE_FLOAT, &fine);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, w, 0, T_));
    cr_assert_eq(w[(7 * L_ + 1) * K_], 0.25f);
    eplb_trace_close(tr);
    unlink(path);
}

/* The e_score_correction_bias (found by mutation testing: isnan for
 * !isfinite passed, no test had a non-finite bias): +Inf, -Inf and NaN are
 * refused naming the layer, through the library and by `run`. */
Test(trace_errors, bias_nan_inf_refused)
{
    const char *path = good_trace();
    float b[L_ * E_];
    for (int i = 0; i < L_ * E_; i++)
        b[i] = 0.01f * (float)i;
    hsize_t dims[2] = {L_, E_};
    put_dataset(path, "/router/e_score_correction_bias", H5T_IEEE_F32LE, 2, dims, NULL, NULL, -1,
                H5T_NATIVE_FLOAT, b);
    float got[L_ * E_];
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_bias(tr, got));
    cr_assert_arr_eq(got, b, sizeof b);
    eplb_trace_close(tr);
    const float bad[3] = {INFINITY, -INFINITY, NAN};
    for (int i = 0; i < 3; i++) {
        hsize_t c[2] = {1, 5};
        eplb_test_h5_poke(path, "/router/e_score_correction_bias", c, H5T_NATIVE_FLOAT, &bad[i]);
        eplb_assert_ok(eplb_trace_open(&tr, path));
        eplb_assert_fails(eplb_trace_read_bias(tr, got), EPLB_ERR_FORMAT,
                          "/router/e_score_correction_bias: layer 1: NaN or Inf");
        eplb_trace_close(tr);
        char *out = NULL;
        int rc = eplb_test_run_cli(&out, "run '%s' --quiet --policy-time 0 --device cpu", path);
        cr_assert_eq(rc, 1, "%g: exit %d: %s", (double)bad[i], rc, out);
        cr_assert(strstr(out, "e_score_correction_bias: layer 1: NaN or Inf") != NULL, "%s", out);
        free(out);
    }
    unlink(path);
}

/* eplb_trace_version must be 1 (traces/FORMAT.md): versions below it are
 * refused as well as above (mutation testing: `version > 1` passed, the
 * only case was version 2). */
Test(trace_errors, version_below_one_refused)
{
    const char *path = good_trace();
    const int64_t bad[2] = {0, -1};
    for (int i = 0; i < 2; i++) {
        set_int_attr(path, "eplb_trace_version", bad[i]);
        char want[96];
        snprintf(want, sizeof want, "root attribute 'eplb_trace_version' = %lld",
                 (long long)bad[i]);
        assert_open_fails(path, EPLB_ERR_FORMAT, want);
    }
    unlink(path);
}

/* /steps/phase values are 0, 1 or 2 (traces/FORMAT.md), checked at open:
 * a phase of 3 is refused naming the step (mutation testing: `> 3`
 * passed; no test had a bad phase). */
Test(trace_errors, phase_above_two_refused)
{
    const char *path = good_trace();
    uint8_t ph[S_] = {0, 1, 2, 2};
    hsize_t n = S_;
    put_dataset(path, "/steps/phase", H5T_STD_U8LE, 1, &n, NULL, NULL, -1, H5T_NATIVE_UINT8, ph);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_trace_close(tr);
    ph[3] = 3;
    put_dataset(path, "/steps/phase", H5T_STD_U8LE, 1, &n, NULL, NULL, -1, H5T_NATIVE_UINT8, ph);
    assert_open_fails(path, EPLB_ERR_FORMAT, "/steps/phase: step 3: phase 3 (expected 0, 1 or 2)");
    unlink(path);
}

/* Ids stored as a signed integer type (the reader accepts any) may be
 * negative: -1 is refused like an id past E (mutation testing: a signed
 * compare against E, which lets negatives through, passed). */
Test(trace_errors, negative_id_of_a_signed_type_refused)
{
    const char *path = good_trace();
    static int8_t ids[T_ * L_ * K_];
    for (int t = 0; t < T_; t++) /* K_ = 2 different experts a row */
        for (int i = 0; i < L_ * K_; i++)
            ids[t * L_ * K_ + i] = (int8_t)((t + i) % E_);
    hsize_t dims[3] = {T_, L_, K_};
    put_dataset(path, "/router/topk_ids", H5T_STD_I8LE, 3, dims, NULL, NULL, -1, H5T_NATIVE_INT8,
                ids);
    int32_t got[T_ * L_ * K_];
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_ok(eplb_trace_read_topk(tr, got, NULL, 0, T_));
    eplb_trace_close(tr);
    ids[(13 * L_ + 1) * K_] = -1;
    put_dataset(path, "/router/topk_ids", H5T_STD_I8LE, 3, dims, NULL, NULL, -1, H5T_NATIVE_INT8,
                ids);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_assert_fails(eplb_trace_read_topk(tr, got, NULL, 0, T_), EPLB_ERR_FORMAT,
                      "/router/topk_ids: token 13 layer 1: expert id -1 outside [0, 8)");
    eplb_trace_close(tr);
    unlink(path);
}

/* A bad top-k row read in a range that starts past token 0, with 3 layers
 * and top-2, is named by its token in the trace and its layer (mutation
 * testing: the token relative to the range, and the row modulo top_k for
 * the layer, both passed: every test read from token 0 with L = K). */
Test(trace_errors, ids_error_names_trace_token_and_layer)
{
    enum { L = 3, K = 2, T = 20 };
    const char *path = eplb_test_path(eplb_test_tmpdir(), "l3.h5");
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("m", "test_trace_errors.c", L, E_, K, EPLB_LEVEL_TOPK);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    int32_t ids[T * L * K];
    for (int i = 0; i < T * L * K; i++)
        ids[i] = (i / K + i % K) % E_; /* K different experts a row */
    eplb_assert_ok(eplb_trace_writer_append_step(w, T, NULL, ids, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    hsize_t c[3] = {13, 2, 1}; /* token 13, layer 2: its second id = its first */
    uint8_t v = (uint8_t)ids[(13 * L + 2) * K];
    eplb_test_h5_poke(path, "/router/topk_ids", c, H5T_NATIVE_UINT8, &v);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    char want[128];
    snprintf(want, sizeof want, "/router/topk_ids: token 13 layer 2: expert %d appears twice",
             (int)v);
    eplb_assert_fails(eplb_trace_read_topk(tr, ids, NULL, 10, T), EPLB_ERR_FORMAT, want);
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, NULL, 14, T));
    eplb_trace_close(tr);
    unlink(path);
}

/* The per-step limit at its boundary (traces/FORMAT.md, Limits: tokens x
 * L x K x 4 bytes at most 2 GiB; L = K = 2: 2^27 tokens): one token more
 * is refused by that check, exactly 2^27 passes it (and then fails only
 * because the declared ids were never written).  Mutation testing: `n >
 * most + 1` passed. */
Test(trace_errors, step_token_limit_at_its_boundary, .timeout = 20)
{
    const int64_t most = (int64_t)1 << 27;
    for (int extra = 1; extra >= 0; extra--) {
        const int64_t offs[2] = {0, most + extra};
        char path[600];
        snprintf(path, sizeof path, "%s", bare_trace(offs, 2));
        hsize_t dims[3] = {(hsize_t)(most + extra), L_, K_};
        put_dataset(path, "/router/topk_ids", H5T_STD_U8LE, 3, dims, NULL, NULL, -1, -1, NULL);
        if (extra)
            assert_open_fails(path, EPLB_ERR_FORMAT,
                              "/steps/token_offset: step 0 has 134217729 tokens; at most "
                              "134217728");
        else
            assert_open_fails(path, EPLB_ERR_FORMAT,
                              "/router/topk_ids: its data were never written");
        unlink(path);
    }
}

/* token_offset[0] must be 0 (traces/FORMAT.md), not just >= 0: offsets
 * starting at 1 would skip the file's first token.  Mutation testing: `<
 * 0` for `!= 0` passed. */
Test(trace_errors, offsets_not_starting_at_zero)
{
    const char *path = good_trace();
    hsize_t c = 0;
    int64_t v = 1; /* offsets 1, 5, 10, 15, 20: still increasing */
    eplb_test_h5_poke(path, "/steps/token_offset", &c, H5T_NATIVE_INT64, &v);
    assert_open_fails(path, EPLB_ERR_FORMAT, "/steps/token_offset[0] = 1; must be 0");
    unlink(path);
}

/* One offset ([0]) is a trace of no steps: refused by name, as none.
 * Mutation testing: `n < 1` for `n < 2` passed. */
Test(trace_errors, offsets_of_one_entry_no_steps)
{
    const int64_t offs[1] = {0};
    const char *path = bare_trace(offs, 1);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/steps/token_offset has 1 entries: the trace has no steps");
    unlink(path);
}

/* ---- the probe (traces/probe.c) and the HDF5 helpers (traces/h5util.c):
 * cases found by mutation testing of both files ------------------------- */

/* A thread that blocks until the process exits. */
static void *block_forever(void *arg)
{
    char c;
    while (read(*(const int *)arg, &c, 1) != 0)
        ;
    return NULL;
}

/* eplb_trace_probe_run(path) in a forked child of this test (one thread:
 * the runner's process has more, and then nothing is probed), after
 * starting a thread that is not one of the pool's if other_thread; its
 * result as an exit status (255: -1, no probe ran). */
static int probe_in_child(const char *path, int other_thread)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        static int fds[2];
        pthread_t th;
        if (other_thread && (pipe(fds) != 0 || pthread_create(&th, NULL, block_forever, &fds[0])))
            _exit(253);
        _exit(eplb_trace_probe_run(path) & 0xff);
    }
    int ws = 0;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_assert(WIFEXITED(ws), "%s: status %d", path, ws);
    return WEXITSTATUS(ws);
}

/* fork() is safe only while no other thread could hold a lock: a thread
 * other than the pool's sleeping helpers turns the probe off, and so does
 * EPLB_TRACE_PROBE=0 (named in the probe's messages as the way to turn it
 * off); a child that fails to open the file (here: not HDF5) is 1, left to
 * the open itself to report.  Mutation testing: counting threads with >=
 * (probing beside another thread), ignoring EPLB_TRACE_PROBE=0, and a
 * failed child taken for 0 all passed. */
Test(trace_errors, probe_runs_only_when_safe_and_wanted)
{
    const char *good = good_trace();
    cr_assert_eq(probe_in_child(good, 0), 0, "a valid trace, one thread");
    cr_assert_eq(probe_in_child(good, 1), 255, "another thread: no probe");
    cr_assert_eq(setenv("EPLB_TRACE_PROBE", "0", 1), 0);
    cr_assert_eq(probe_in_child(good, 0), 255, "EPLB_TRACE_PROBE=0: no probe");
    cr_assert_eq(setenv("EPLB_TRACE_PROBE", "1", 1), 0);
    cr_assert_eq(probe_in_child(good, 0), 0, "EPLB_TRACE_PROBE=1 probes");
    unsetenv("EPLB_TRACE_PROBE");
    const char *text = eplb_test_path(eplb_test_tmpdir(), "probe-text.h5");
    eplb_test_write_text(text, "not hdf5\n");
    cr_assert_eq(probe_in_child(text, 0), 1, "the child's open fails");
    unlink(text);
    unlink(good);
}

/* The probe's child looks up the chunks of chunked datasets only, and of
 * an empty one none: a valid trace of contiguous datasets, and one whose
 * chunked top-k ids hold no token (a step of 0 tokens), probe as valid
 * (0).  Mutation testing: walking contiguous datasets (whose chunk shape
 * cannot be read: the child failed) and failing on a dataset of no chunk
 * both passed: every probed trace had non-empty chunked datasets only. */
Test(trace_errors, probe_walks_contiguous_and_empty_datasets)
{
    const int64_t offs[2] = {0, TPS};
    char path[600];
    snprintf(path, sizeof path, "%s", bare_trace(offs, 2));
    int32_t cn[L_ * E_] = {0};
    for (int l = 0; l < L_; l++)
        cn[l * E_] = TPS;
    hsize_t cd[3] = {1, L_, E_};
    put_dataset(path, "/load/counts", H5T_STD_I32LE, 3, cd, NULL, NULL, -1, H5T_NATIVE_INT32, cn);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_trace_close(tr);
    cr_assert_eq(probe_in_child(path, 0), 0, "contiguous datasets");
    unlink(path);

    const int64_t none[2] = {0, 0};
    snprintf(path, sizeof path, "%s", bare_trace(none, 2));
    hsize_t d0[3] = {0, L_, K_}, mx[3] = {H5S_UNLIMITED, L_, K_}, ch[3] = {64, L_, K_};
    put_dataset(path, "/router/topk_ids", H5T_STD_I32LE, 3, d0, mx, ch, -1, -1, NULL);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->num_tokens, 0);
    eplb_trace_close(tr);
    cr_assert_eq(probe_in_child(path, 0), 0, "an empty chunked dataset");
    unlink(path);
}

/* Only a crash signal blames the file: a probe child killed by another
 * signal (an interrupt, SIGKILL from an out-of-memory killer) says nothing
 * of it (1: the open goes on and reports for itself), and SIGKILL is the
 * time limit's only when the probe sent it at the limit.  Here the child
 * spins on a corrupt heap with no time limit and this test signals it.
 * Mutation testing: every signal taken for a crash, and any SIGKILL for
 * the time limit, both passed. */
Test(trace_errors, probe_blames_the_file_for_crash_signals_only)
{
    alarm(60); /* a hang fails the test (see probe_time_limit) */
    const char *good = good_trace();
    const char *bad = heap_loop_copy(good);
    cr_assert_eq(setenv("EPLB_TRACE_PROBE_TIMEOUT", "0", 1), 0);
    const int sigs[] = {SIGTERM, SIGKILL, SIGSEGV}, want[] = {1, 1, 128 + SIGSEGV};
    for (int i = 0; i < 3; i++) {
        fflush(NULL);
        pid_t a = fork();
        cr_assert(a >= 0);
        if (a == 0)
            _exit(eplb_trace_probe_run(bad) & 0xff);
        char kids[96];
        snprintf(kids, sizeof kids, "/proc/%d/task/%d/children", (int)a, (int)a);
        long g = 0;
        for (int tries = 0; tries < 1000 && g <= 0; tries++) {
            FILE *f = fopen(kids, "r");
            if (f) {
                if (fscanf(f, "%ld", &g) != 1)
                    g = 0;
                fclose(f);
            }
            if (g <= 0)
                usleep(10000);
        }
        cr_assert(g > 0, "the probe started no child (%s)", kids);
        usleep(300000); /* in HDF5 by now, its crash signals at their default */
        cr_assert_eq(kill((pid_t)g, sigs[i]), 0);
        int ws = 0;
        cr_assert_eq(waitpid(a, &ws, 0), a);
        cr_assert(WIFEXITED(ws), "status %d", ws);
        cr_assert_eq(WEXITSTATUS(ws), want[i], "signal %d: probe %d, want %d", sigs[i],
                     WEXITSTATUS(ws), want[i]);
    }
    unsetenv("EPLB_TRACE_PROBE_TIMEOUT");
    alarm(0);
    unlink(bad);
    unlink(good);
}

/* A chunked dataset whose extent ends inside its last chunk has that
 * partial chunk too: 100 rows in chunks of 64 are 2 chunks, and with only
 * the first written the trace is refused as unfinished.  Mutation testing:
 * counting chunks rounded down (dims / chunk) passed: every test's extent
 * was a multiple of its chunk, or the unwritten chunk not the last. */
Test(trace_errors, unwritten_partial_last_chunk_refused, .timeout = 20)
{
    const int64_t offs[2] = {0, 100};
    char path[600];
    snprintf(path, sizeof path, "%s", bare_trace(offs, 2));
    hsize_t d[3] = {100, L_, K_}, mx[3] = {H5S_UNLIMITED, L_, K_}, c[3] = {64, L_, K_},
            rest[3] = {36, L_, K_};
    put_dataset(path, "/router/topk_ids", H5T_STD_I32LE, 3, d, mx, c, -1, -1, NULL);
    static int32_t ids[64][L_][K_];
    for (int t = 0; t < 64; t++)
        for (int l = 0; l < L_; l++)
            for (int k = 0; k < K_; k++)
                ids[t][l][k] = k;
    write_ids_chunk(path, 0, c, ids);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/router/topk_ids: 1 of its 2 chunks were never written");
    write_ids_chunk(path, 64, rest, ids);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_trace_close(tr);
    unlink(path);
}

/* Logits of a float type that is float32, float16 or bfloat16 in all but
 * its exponent bias are refused, naming the dataset and every field (read
 * as the standard type, each value would be scaled by a power of 2).
 * Mutation testing: dropping the bias from each type's check passed. */
Test(trace_errors, logits_float_bias_checked)
{
    const hsize_t dims[3] = {T_, L_, E_};
    for (int c = 0; c < 3; c++) {
        char path[600];
        snprintf(path, sizeof path, "%s", good_trace());
        hid_t t = c == 0   ? H5Tcopy(H5T_IEEE_F32LE)
                  : c == 1 ? eplb_h5_type_f16()
                           : eplb_h5_type_bf16();
        cr_assert(t >= 0);
        cr_assert(H5Tset_ebias(t, c == 0 ? 100 : c == 1 ? 14 : 126) >= 0);
        put_dataset(path, "/router/logits", t, 3, dims, NULL, NULL, -1, -1, NULL);
        H5Tclose(t);
        static const char *const want[3] = {
            "/router/logits: unsupported float type (size 4, sign bit 31, exponent 8 bits at "
            "23, mantissa 23 bits, bias 100); expected float32, float16 or bfloat16",
            "/router/logits: unsupported float type (size 2, sign bit 15, exponent 5 bits at "
            "10, mantissa 10 bits, bias 14)",
            "/router/logits: unsupported float type (size 2, sign bit 15, exponent 8 bits at "
            "7, mantissa 7 bits, bias 126)"};
        assert_open_fails(path, EPLB_ERR_FORMAT, want[c]);
        unlink(path);
    }
}

/* Heap index past the collection (see heap_index_out_of_range): the
 * message names the signal the probe's child died of, by number and
 * name.  Mutation testing: the number off by one passed. */
Test(trace_errors, probe_crash_names_the_signal)
{
    const char *good = good_trace();
    const char *bad = corrupt_heap_ref(good, 0);
    char want[800];
    snprintf(want, sizeof want,
             "%s: corrupt HDF5 metadata: the HDF5 library died of signal %d (%s) reading it", bad,
             SIGSEGV, strsignal(SIGSEGV));
    eplb_test_cli_expect(1, want, "info '%s'", bad);
    unlink(bad);
    unlink(good);
}

/* Numeric root attributes: exactly one value, a number, an integer where
 * one is wanted (a float attribute holding one reads: h5py writes Python
 * floats so), INT64_MAX as an unsigned 64-bit value still a number (then
 * out of range); enums (h5py's numpy bool) read as their signed or
 * unsigned integer.  Mutation testing: each of these checks dropped or
 * moved passed (the tests had a wrong version, a missing attribute, 2^64 -
 * 1 and 1e30 only). */
Test(trace_errors, numeric_attribute_forms)
{
    const char *path = good_trace();
    const int64_t two[2] = {L_, L_};
    hsize_t n2 = 2;
    hid_t f = open_rw(path);
    cr_assert(H5Adelete(f, "num_layers") >= 0);
    hid_t sp = H5Screate_simple(1, &n2, NULL);
    hid_t a = H5Acreate2(f, "num_layers", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, two) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "root attribute 'num_layers' has 2 values, expected one");

    set_str_attr(path, "num_layers", "2");
    assert_open_fails(path, EPLB_ERR_FORMAT, "root attribute 'num_layers' is not a number");
    set_int_attr(path, "num_layers", L_);
    set_int_attr(path, "model", 7);
    assert_open_fails(path, EPLB_ERR_FORMAT, "root attribute 'model' is not a string");
    set_str_attr(path, "model", "m");

    const double half = 2.5, whole = 2.0;
    set_attr(path, "num_layers", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &half);
    assert_open_fails(path, EPLB_ERR_FORMAT, "'num_layers' = 2.5 is not an integer");
    set_attr(path, "num_layers", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &whole);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->num_layers, L_);
    eplb_trace_close(tr);
    const double low = -9223372036854775808.0; /* -2^63: an int64 */
    set_attr(path, "num_layers", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &low);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "root attribute 'num_layers' = -9223372036854775808 is outside [1, ");

    const unsigned long long max = 9223372036854775807ull;
    set_attr(path, "num_layers", H5T_STD_U64LE, H5T_NATIVE_ULLONG, &max);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "root attribute 'num_layers' = 9223372036854775807 is outside [1, ");
    set_int_attr(path, "num_layers", L_);

    /* enums: a signed one of -1, an unsigned one of 200, and h5py's bool */
    for (int c = 0; c < 3; c++) {
        hid_t et = H5Tenum_create(c == 1 ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT8);
        int8_t s[2] = {c == 0 ? -1 : 0, 1};
        uint8_t u[2] = {200, 1};
        cr_assert(H5Tenum_insert(et, "A", c == 1 ? (void *)&u[0] : (void *)&s[0]) >= 0);
        cr_assert(H5Tenum_insert(et, "B", c == 1 ? (void *)&u[1] : (void *)&s[1]) >= 0);
        set_attr(path, "renormalize", et, et,
                 c == 2 ? (void *)&s[1]
                 : c    ? (void *)&u[0]
                        : (void *)&s[0]);
        H5Tclose(et);
        if (c < 2) {
            assert_open_fails(path, EPLB_ERR_FORMAT,
                              c ? "root attribute 'renormalize' = 200 is outside [0, 1]"
                                : "root attribute 'renormalize' = -1 is outside [0, 1]");
        } else {
            eplb_assert_ok(eplb_trace_open(&tr, path));
            cr_assert_eq(eplb_trace_info(tr)->route.renormalize, 1);
            eplb_trace_close(tr);
        }
    }
    /* a double read from an enum: its value */
    hid_t et = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t v3 = 3;
    cr_assert(H5Tenum_insert(et, "THREE", &v3) >= 0);
    set_attr(path, "routed_scaling_factor", et, et, &v3);
    H5Tclose(et);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_float_eq(eplb_trace_info(tr)->route.routed_scaling_factor, 3.0f, 0);
    eplb_trace_close(tr);
    /* missing: said so (not HDF5's failed open, which names it too) */
    f = open_rw(path);
    cr_assert(H5Adelete(f, "renormalize") >= 0);
    H5Fclose(f);
    assert_open_fails(path, EPLB_ERR_FORMAT, "missing root attribute 'renormalize'");
    unlink(path);
}

/* Soft links: a relative target is relative to the group holding the
 * link (/router/logits -> "lg" is /router/lg); a chain of 16 soft links
 * is followed and one of 17 refused by name; a path under a dataset is
 * absent, not a read error.  Mutation testing: targets taken relative to
 * the root, or as absolute, the depth limit one deeper, and a failed
 * look-up under a dataset taken for an I/O error all passed. */
Test(trace_errors, soft_links_relative_nested_and_under_a_dataset)
{
    const char *path = good_trace();
    hid_t f = open_rw(path);
    cr_assert(H5Lmove(f, "/router/logits", f, "/router/lg", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    cr_assert(H5Lcreate_soft("lg", f, "/router/logits", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->levels,
                 EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS);
    eplb_trace_close(tr);
    unlink(path);

    /* /router -> /a1 -> ... -> /aN -> /r0 */
    path = good_trace();
    for (int links = 16; links <= 17; links++) {
        f = open_rw(path);
        if (links == 16)
            cr_assert(H5Lmove(f, "/router", f, "/r0", H5P_DEFAULT, H5P_DEFAULT) >= 0);
        else
            for (int i = 15; i >= 1; i--) {
                char name[16];
                snprintf(name, sizeof name, "/a%d", i);
                cr_assert(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
            }
        if (links == 17)
            cr_assert(H5Ldelete(f, "/router", H5P_DEFAULT) >= 0);
        for (int i = 1; i < links; i++) {
            char name[16], target[16];
            snprintf(name, sizeof name, "/a%d", i);
            if (i == links - 1)
                snprintf(target, sizeof target, "/r0");
            else
                snprintf(target, sizeof target, "/a%d", i + 1);
            cr_assert(H5Lcreate_soft(target, f, name, H5P_DEFAULT, H5P_DEFAULT) >= 0);
        }
        cr_assert(H5Lcreate_soft("/a1", f, "/router", H5P_DEFAULT, H5P_DEFAULT) >= 0);
        H5Fclose(f);
        if (links == 16) {
            eplb_assert_ok(eplb_trace_open(&tr, path));
            cr_assert_eq(eplb_trace_info(tr)->levels,
                         EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS);
            eplb_trace_close(tr);
        } else {
            assert_open_fails(path, EPLB_ERR_FORMAT,
                              "/router/logits: soft links nested more than 16 deep at /a16");
        }
    }
    unlink(path);

    /* /router a dataset: no logits or top-k ids under it, the counts read */
    path = good_trace();
    drop(path, "/router/logits");
    drop(path, "/router/topk_ids");
    drop(path, "/router");
    hsize_t one = 1;
    int32_t z = 0;
    put_dataset(path, "/router", H5T_STD_I32LE, 1, &one, NULL, NULL, -1, H5T_NATIVE_INT32, &z);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->levels, EPLB_LEVEL_COUNTS);
    eplb_trace_close(tr);
    unlink(path);
}

/* A chunk count past 2^64 (extent 2^40 x 2^40 x 2 in chunks of one
 * element) saturates: such a dataset is refused for its number of small
 * chunks.  Mutation testing: an overflow taken for 0 chunks passed. */
Test(trace_errors, chunk_count_past_uint64_saturates, .timeout = 20)
{
    const char *path = good_trace();
    hsize_t d[3] = {(hsize_t)1 << 40, (hsize_t)1 << 40, K_},
            mx[3] = {H5S_UNLIMITED, H5S_UNLIMITED, K_}, one[3] = {1, 1, 1};
    put_dataset(path, "/router/topk_ids", H5T_STD_U8LE, 3, d, mx, one, -1, -1, NULL);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "/router/topk_ids: 18446744073709551615 chunks of [1, 1, 1] elements");
    unlink(path);
}

/* ---- mutation testing of traces/h5util.c, second pass ------------------- */

/* The address of the object header of `name` in path. */
static haddr_t object_header_addr(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    haddr_t a = HADDR_UNDEF;
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t oi;
    cr_assert(H5Oget_info_by_name3(f, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0);
    memcpy(&a, &oi.token, sizeof a); /* the native file format's token is the address */
#elif H5_VERSION_GE(1, 10, 3)
    H5O_info_t oi;
    cr_assert(H5Oget_info_by_name2(f, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0);
    a = oi.addr;
#else
    H5O_info_t oi;
    cr_assert(H5Oget_info_by_name(f, name, &oi, H5P_DEFAULT) >= 0);
    a = oi.addr;
#endif
    H5Fclose(f);
    return a;
}

/* A copy of good (PATH.SUFFIX.h5) whose object `name` has a version 1
 * object header (the writer's: no "OHDR" signature, no checksum) with its
 * version byte, the header's first, set to 2. */
static const char *header_version_2(const char *good, const char *name, const char *suffix)
{
    const haddr_t a = object_header_addr(good, name);
    size_t n = 0;
    unsigned char *b = eplb_test_slurp(good, &n);
    cr_assert(a < n, "%s: header at %llu, past the end", name, (unsigned long long)a);
    cr_assert_eq(b[a], 1, "%s: object header version %d, not 1: the writer's format changed?", name,
                 b[a]);
    b[a] = 2;
    static char path[600];
    snprintf(path, sizeof path, "%s.%s.h5", good, suffix);
    eplb_test_write_bytes(path, b, n);
    free(b);
    return path;
}

/* The start of eplb_h5_fail's hint for a version this HDF5 does not know,
 * with this build's HDF5 version. */
static const char *newer_format_hint(void)
{
    unsigned maj = 0, min = 0, rel = 0;
    cr_assert(H5get_libversion(&maj, &min, &rel) >= 0);
    static char hint[128];
    snprintf(hint, sizeof hint, "; a file format newer than this build's HDF5 %u.%u.%u reads",
             maj, min, rel);
    return hint;
}

/* A message version this HDF5 does not know (here /router/logits' object
 * header version, which HDF5 refuses as "bad object header version
 * number") is refused naming the dataset, with the hint that the file may
 * come from a newer HDF5 (h5util.c eplb_h5_fail), naming this build's
 * version.  Mutation testing: the hint dropped passed. */
Test(trace_errors, unknown_version_hints_at_a_newer_format)
{
    const char *good = good_trace();
    const char *bad = header_version_2(good, "/router/logits", "ohdr");
    char want[900];
    snprintf(want, sizeof want,
             "%s: /router/logits: cannot open dataset (hdf5: bad object header version "
             "number)%s (h5py on HDF5 >= 2.0 with libver='latest' writes one",
             bad, newer_format_hint());
    assert_open_fails(bad, EPLB_ERR_FORMAT, want);
    unlink(bad);
    unlink(good);
}

/* A group on the way that exists but cannot be opened (/router, its
 * header unreadable) is an error naming the dataset looked up, not a
 * missing dataset: the trace did open as counts only, without its logits
 * and top-k ids.  Mutation testing: a parent that failed to open taken
 * for a dataset (so the path for missing) passed. */
Test(trace_errors, unreadable_group_on_the_way_is_an_error)
{
    const char *good = good_trace();
    const char *bad = header_version_2(good, "/router", "group");
    char want[700];
    snprintf(want, sizeof want,
             "%s: /router/logits: cannot look up link (hdf5: bad object header version number)",
             bad);
    assert_open_fails(bad, EPLB_ERR_IO, want);
    unlink(bad);
    unlink(good);
}

/* A file whose close fails (a new attribute's flush at close, its
 * descriptor swapped for a read-only one of the same file) is an I/O
 * error naming the file and HDF5's reason, with the system's.  In a child:
 * HDF5 1.10 keeps the id of a file whose close failed and crashes on it
 * at exit.  Mutation testing: the message dropped (the bare status, as
 * for a NULL path) passed. */
Test(trace_errors, failed_file_close_names_the_file)
{
    const char *path = good_trace();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char msg[1024] = "setup failed";
        int st = -1;
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        FILE *ro = fopen(path, "rb");
        void *h = NULL;
        if (f >= 0 && ro && eplb_h5_attr_write_int(f, "extra", 5, path) == EPLB_OK &&
            H5Fget_vfd_handle(f, H5P_DEFAULT, &h) >= 0 && h &&
            dup2(fileno(ro), *(const int *)h) == *(const int *)h) {
            eplb_error_clear();
            st = (int)eplb_h5_file_close_all(&f, path);
            snprintf(msg, sizeof msg, "%s", eplb_error_last());
        }
        char line[1100];
        const int n = snprintf(line, sizeof line, "%d %lld %s", st, (long long)f, msg);
        _exit(write(p[1], line, (size_t)n) == n ? 0 : 2);
    }
    close(p[1]);
    char line[1100] = "";
    size_t got = 0;
    ssize_t r;
    while (got < sizeof line - 1 && (r = read(p[0], line + got, sizeof line - 1 - got)) > 0)
        got += (size_t)r;
    line[got] = '\0';
    close(p[0]);
    int ws = 0;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child: status %#x: %s", ws, line);
    int st = 0;
    long long id = 0, off = 0;
    cr_assert_eq(sscanf(line, "%d %lld %lln", &st, &id, &off), 2, "%s", line);
    cr_assert_eq(st, EPLB_ERR_IO, "%s", line);
    cr_assert_lt(id, 0, "the id is not reset: %s", line);
    char want[900];
    snprintf(want, sizeof want, /* pwrite on a read-only descriptor: EBADF */
             "%s: cannot close file (hdf5: file write failed: Bad file descriptor)", path);
    cr_assert_str_eq(line + off, want);
    unlink(path);
}

/* A dataset through a filter this build lacks (h5py's lzf) is refused
 * naming the file, the dataset and the filter: HDF5's "required filter
 * 'lzf' is not registered", not the failed plugin search below it (made
 * certain here: the plugin directory does not exist).  Mutation testing:
 * the plugin search's entry taken as the reason passed. */
Test(trace_errors, unregistered_filter_named)
{
    if (system("python3 -c 'import h5py, h5py.h5z as z; assert z.filter_avail(z.FILTER_LZF)' "
               ">/dev/null 2>&1") != 0)
        cr_skip_test("python3 with h5py and its lzf filter not available");
    const char *path = good_trace();
    char cmd[1500];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import h5py\n"
             "f = h5py.File('%s', 'r+')\n"
             "c = f['load/counts'][()]\n"
             "del f['load/counts']\n"
             "f.create_dataset('load/counts', data=c, chunks=c.shape, compression='lzf')\n"
             "assert f['load/counts'].compression == 'lzf'\n"
             "f.close()\"",
             path);
    cr_assert_eq(system(cmd), 0, "h5py could not rewrite /load/counts of %s", path);
    char *out = NULL;
    int rc = eplb_test_run_cli_prefixed(&out, "env HDF5_PLUGIN_PATH=/nonexistent/eplb-plugins ",
                                        "run '%s' --quiet --policy-time 0", path);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, out);
    char want[700];
    snprintf(want, sizeof want, "%s: /load/counts: ", path);
    cr_assert(strstr(out, want) && strstr(out, "(hdf5: required filter 'lzf' is not registered)"),
              "%s", out);
    free(out);
    unlink(path);
}

/* A fixed-length string with text in its last byte only, after a NUL
 * ("tok\0y"), is refused as "to\0ky" is (bad_input's test).  Mutation
 * testing: the last byte left unchecked passed. */
Test(trace_errors, string_attribute_text_in_last_byte_refused)
{
    const char *path = good_trace();
    hid_t t = H5Tcopy(H5T_C_S1);
    cr_assert(t >= 0 && H5Tset_size(t, 5) >= 0 && H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0);
    set_attr(path, "model", t, t, "tok\0y");
    H5Tclose(t);
    assert_open_fails(path, EPLB_ERR_FORMAT,
                      "root attribute 'model' holds a NUL byte at 3, before more text");
    unlink(path);
}

/* Attributes written over ones of the same name replace them, and a null
 * variable-length string (which HDF5 reads back as a NULL pointer) reads
 * as empty.  Mutation testing: the existing attribute kept (the write then
 * fails) and a null string read as "?" both passed. */
Test(trace_errors, string_attribute_replaced_and_null)
{
    const char *path = good_trace();
    for (int c = 0; c < 2; c++) {
        hid_t f = open_rw(path);
        cr_assert_gt(H5Aexists(f, "model"), 0);
        eplb_assert_ok(eplb_h5_attr_write_str(f, "model", c ? NULL : "other", path));
        H5Fclose(f);
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, path));
        cr_assert_str_eq(eplb_trace_info(tr)->model, c ? "" : "other");
        eplb_trace_close(tr);
    }
    unlink(path);
}

/* A soft link's target of 1023 bytes is read whole and followed (/router
 * -> "/ggg...", the group renamed so); one of 1024 bytes, past the
 * reader's buffer, is refused by name.  Mutation testing: a target one
 * byte longer let through passed (read cut to 1023 bytes, here the
 * group's name, the check followed another object than HDF5 then did,
 * and the open failed as an I/O error). */
Test(trace_errors, soft_link_target_length_bounded)
{
    const char *path = good_trace();
    char g[1026];
    g[0] = '/';
    memset(g + 1, 'g', 1023);
    g[1024] = '\0';
    g[1023] = '\0'; /* "/" and 1022 g: 1023 bytes */
    hid_t f = open_rw(path);
    cr_assert(H5Lmove(f, "/router", f, g, H5P_DEFAULT, H5P_DEFAULT) >= 0);
    cr_assert(H5Lcreate_soft(g, f, "/router", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->levels,
                 EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS);
    eplb_trace_close(tr);
    g[1023] = 'g'; /* 1024 bytes, its first 1023 the group's name */
    f = open_rw(path);
    cr_assert(H5Ldelete(f, "/router", H5P_DEFAULT) >= 0);
    cr_assert(H5Lcreate_soft(g, f, "/router", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    assert_open_fails(path, EPLB_ERR_FORMAT, "/router/logits: cannot read soft link /router");
    unlink(path);
}

/* A superblock version this HDF5 does not know (the byte after the 8-byte
 * signature set to 9) is refused with HDF5's reason and the newer-format
 * hint (h5util.c eplb_h5_fail).  Found by mutation testing: the reader
 * closed its file-access list before taking the reason, and every HDF5
 * call clears the error stack, so the message said only "cannot open as
 * HDF5 (truncated or corrupt file?)". */
Test(trace_errors, unknown_superblock_version_hints_at_a_newer_format)
{
    const char *good = good_trace();
    size_t n = 0;
    unsigned char *b = eplb_test_slurp(good, &n);
    cr_assert(n > 8 && !memcmp(b, "\x89HDF\r\n\x1a\n", 8), "%s: no signature at 0", good);
    b[8] = 9;
    char bad[600];
    snprintf(bad, sizeof bad, "%s.sb9.h5", good);
    eplb_test_write_bytes(bad, b, n);
    free(b);
    char want[900];
    snprintf(want, sizeof want,
             "%s: cannot open as HDF5 (truncated or corrupt file?) (hdf5: bad superblock "
             "version number)%s",
             bad, newer_format_hint());
    assert_open_fails(bad, EPLB_ERR_FORMAT, want);
    unlink(bad);
    unlink(good);
}

/* An enum attribute's value is read in the native type's size, not the
 * file's: a signed 3-byte enum of -1 (read into a 4-byte int) is -1,
 * outside [0, 1] for renormalize, and one of 1 is accepted.  Found by
 * mutation testing: the value was taken by the file size (3: the 8-byte
 * default), and -1 read as 4294967295. */
Test(trace_errors, enum_of_three_bytes_read_signed)
{
    const char *path = good_trace();
    for (int c = 0; c < 2; c++) {
        hid_t base = H5Tcopy(H5T_STD_I32LE);
        cr_assert(base >= 0 && H5Tset_size(base, 3) >= 0);
        hid_t et = H5Tenum_create(base);
        const unsigned char minus1[3] = {0xff, 0xff, 0xff}, one[3] = {1, 0, 0};
        cr_assert(H5Tenum_insert(et, "M", minus1) >= 0 && H5Tenum_insert(et, "P", one) >= 0);
        set_attr(path, "renormalize", et, et, c ? one : minus1);
        H5Tclose(et);
        H5Tclose(base);
        if (c == 0) {
            assert_open_fails(path, EPLB_ERR_FORMAT,
                              "root attribute 'renormalize' = -1 is outside [0, 1]");
        } else {
            eplb_trace_t *tr = NULL;
            eplb_assert_ok(eplb_trace_open(&tr, path));
            cr_assert_eq(eplb_trace_info(tr)->route.renormalize, 1);
            eplb_trace_close(tr);
        }
    }
    unlink(path);
}

/* String attributes are at most EPLB_H5_ATTR_STR_MAX (16 MiB; model_config,
 * kept whole, here): a longer one is refused naming it, a fixed-length one
 * by its type's size before anything is allocated for it.  A
 * variable-length string lives in the global heap and is written here; a
 * fixed-length one past 64 KiB needs dense attribute storage (HDF5 1.8
 * format), so h5py writes a copy of the trace in that format. */
/* model_config: n bytes of 'x', a variable-length string */
static void put_vlen_string(const char *path, size_t n)
{
    char *text = malloc(n + 1);
    cr_assert_not_null(text);
    memset(text, 'x', n);
    text[n] = '\0';
    set_str_attr(path, "model_config", text);
    free(text);
}

static const char *too_long_model_config(const char *path)
{
    static char want[700];
    snprintf(want, sizeof want,
             "%s: root attribute 'model_config' is a string of 16777217 bytes; at most 16777216",
             path);
    return want;
}

Test(trace_errors, string_attribute_at_most_16_mib)
{
    alarm(60); /* a hang fails the test (see probe_time_limit) */
    const char *path = good_trace();
    const size_t most = (size_t)16 << 20;
    put_vlen_string(path, most);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(strlen(eplb_trace_info(tr)->model_config), most);
    eplb_trace_close(tr);
    put_vlen_string(path, most + 1);
    assert_open_fails(path, EPLB_ERR_FORMAT, too_long_model_config(path));
    alarm(0);
    unlink(path);
}

Test(trace_errors, fixed_string_attribute_at_most_16_mib)
{
    alarm(60); /* a hang fails the test (see probe_time_limit) */
    if (system("python3 -c 'import h5py, numpy' >/dev/null 2>&1") != 0)
        cr_skip_test("python3 with h5py and numpy not available");
    const char *good = good_trace();
    for (int extra = 0; extra < 2; extra++) {
        char path[600], cmd[2400];
        snprintf(path, sizeof path, "%s.dense%d.h5", good, extra);
        snprintf(cmd, sizeof cmd,
                 "python3 -c \"import h5py, numpy as np\n"
                 "src = h5py.File('%s', 'r')\n"
                 "f = h5py.File('%s', 'w', libver='v108')\n"
                 "for k in src: src.copy(src[k], f, name=k)\n"
                 "for k, v in src.attrs.items(): f.attrs[k] = v\n"
                 "f.attrs['model_config'] = np.bytes_(b'x' * %zu)\n"
                 "assert not f.attrs.get_id('model_config').get_type().is_variable_str()\n"
                 "f.close()\"",
                 good, path, ((size_t)16 << 20) + (size_t)extra);
        cr_assert_eq(system(cmd), 0, "h5py could not write %s", path);
        if (extra) {
            assert_open_fails(path, EPLB_ERR_FORMAT, too_long_model_config(path));
        } else {
            eplb_trace_t *tr = NULL;
            eplb_assert_ok(eplb_trace_open(&tr, path));
            cr_assert_eq(strlen(eplb_trace_info(tr)->model_config), (size_t)16 << 20);
            eplb_trace_close(tr);
        }
        unlink(path);
    }
    alarm(0);
    unlink(good);
}

/* An attribute HDF5 cannot decode (a fixed-length string's size patched
 * from 4099 to 16 MiB + 1, past its message) fails the look-up of the
 * optional model_config: refused naming it.  Found while writing the test
 * above: the failed look-up was taken for an absent model_config. */
Test(trace_errors, undecodable_model_config_refused)
{
    const char *path = good_trace();
    char text[4100];
    memset(text, 'x', 4099);
    text[4099] = '\0';
    hid_t t = H5Tcopy(H5T_C_S1);
    cr_assert(t >= 0 && H5Tset_size(t, 4099) >= 0);
    set_attr(path, "model_config", t, t, text);
    H5Tclose(t);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(strlen(eplb_trace_info(tr)->model_config), 4099);
    eplb_trace_close(tr);
    /* the string type's size (class 3, version 1: 0x13, 3 bytes of class
     * bits, then the size, little-endian) */
    size_t n = 0, at = 0, hits = 0;
    unsigned char *b = eplb_test_slurp(path, &n);
    for (size_t i = 0; i + 8 <= n; i++)
        if (b[i] == 0x13 && !memcmp(b + i + 4, "\x03\x10\x00\x00", 4)) {
            at = i + 4;
            hits++;
        }
    cr_assert_eq(hits, 1, "%s: %zu string types of 4099 bytes", path, hits);
    const uint32_t size = (16u << 20) + 1;
    for (int k = 0; k < 4; k++)
        b[at + (size_t)k] = (unsigned char)(size >> (8 * k));
    eplb_test_write_bytes(path, b, n);
    free(b);
    assert_open_fails(path, EPLB_ERR_FORMAT, "cannot look up root attribute 'model_config'");
    unlink(path);
}
