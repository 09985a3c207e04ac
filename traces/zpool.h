/* zpool.h - ordered parallel (shuffle +) deflate of fixed-size chunks
 * (internal to traces/; the writer's side of parallel.c).
 *
 * The writer fills a raw chunk buffer, submits it, and later takes the
 * compressed chunks back in submission order to store them with
 * H5Dwrite_chunk on its own thread (HDF5 is not thread-safe).  The bytes
 * are those of HDF5's shuffle then deflate filters (or deflate alone):
 * shuffle puts byte j of element i at j*n + i, deflate is a zlib (RFC 1950)
 * stream from compress2 at the dataset's level. */
#ifndef EPLB_TRACES_ZPOOL_H
#define EPLB_TRACES_ZPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "eplb.h"

typedef struct eplb_zpool eplb_zpool_t;

/* nthreads workers, chunks of chunk_bytes made of elements of esize bytes,
 * shuffled first if do_shuffle (as the dataset's filter pipeline says), zlib
 * level; at most `depth` chunks in flight (buffers are preallocated). */
eplb_status_t eplb_zpool_create(eplb_zpool_t **out, int nthreads, size_t chunk_bytes,
                                size_t esize, int do_shuffle, int level, int depth);
/* Stop the workers and free every buffer (pending chunks are dropped). */
void eplb_zpool_destroy(eplb_zpool_t *z);

/* A free raw buffer of chunk_bytes to fill (NULL if all `depth` buffers
 * are submitted and not yet taken back: take one with _next first). */
unsigned char *eplb_zpool_buffer(eplb_zpool_t *z);
/* Queue a buffer from _buffer for compression; `rows` travels with it. */
void eplb_zpool_submit(eplb_zpool_t *z, unsigned char *buf, uint64_t rows);
/* Chunks submitted and not yet taken back. */
int eplb_zpool_pending(const eplb_zpool_t *z);
/* Wait for the oldest submitted chunk; *data and *len are its compressed
 * bytes, valid until the next call of _next or _buffer (which then reuse
 * its buffers). */
eplb_status_t eplb_zpool_next(eplb_zpool_t *z, const void **data, size_t *len,
                              uint64_t *rows);

#endif
