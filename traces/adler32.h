/* adler32.h - the Adler-32 checksum of zlib streams (RFC 1950), for the
 * parallel chunk reader (internal to traces/).
 *
 * The reader inflates HDF5's deflate chunks as raw deflate and checks the
 * stream's Adler-32 trailer itself: zlib's own check is a scalar loop,
 * ~5% of a CPU replay's samples (perf, docs/perf/io.md); this one takes
 * 32 bytes per step with AVX2 where the CPU has it. */
#ifndef EPLB_TRACES_ADLER32_H
#define EPLB_TRACES_ADLER32_H

#include <stddef.h>
#include <stdint.h>

/* Adler-32 of n bytes at p, continuing from `adler` (1 for a new stream):
 * the value zlib's adler32() gives. */
uint32_t eplb_adler32(uint32_t adler, const unsigned char *p, size_t n);
/* The same, by the plain loop (the reference; no AVX2). */
uint32_t eplb_adler32_scalar(uint32_t adler, const unsigned char *p, size_t n);
/* Whether eplb_adler32 takes the AVX2 path on this CPU. */
int eplb_adler32_simd(void);

#endif
