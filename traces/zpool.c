/* zpool.c - ordered parallel (shuffle +) deflate of chunks for the writer. */
#include "zpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tmpfile_guard.h"

#define MAX_WORKERS 64

enum { JOB_FREE, JOB_FILLING, JOB_QUEUED, JOB_BUSY, JOB_DONE };

typedef struct {
    unsigned char *raw;  /* chunk_bytes */
    unsigned char *z;    /* compressBound(chunk_bytes) */
    size_t zlen;
    uint64_t rows;
    uint64_t seq;
    int state;
    int err;             /* zlib status if compress2 failed */
} job_t;

struct eplb_zpool {
    size_t chunk_bytes, esize, zcap;
    int shuffle; /* HDF5's shuffle with 1-byte elements is the identity */
    int level, depth, nthreads;
    job_t *jobs;
    uint64_t next_seq, next_out; /* sequence numbers: submitted, taken */
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    pthread_t th[MAX_WORKERS];
};

static void shuffle(unsigned char *restrict dst, const unsigned char *restrict src, size_t bytes,
                    size_t s)
{
    size_t n = bytes / s;
    if (s == 2) {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[2 * i];
            dst[n + i] = src[2 * i + 1];
        }
    } else if (s == 4) {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[4 * i];
            dst[n + i] = src[4 * i + 1];
            dst[2 * n + i] = src[4 * i + 2];
            dst[3 * n + i] = src[4 * i + 3];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < s; j++)
                dst[j * n + i] = src[i * s + j];
    }
    /* HDF5's shuffle leaves the bytes of an incomplete last element as is */
    memcpy(dst + n * s, src + n * s, bytes - n * s);
}

static void *worker(void *arg)
{
    eplb_zpool_t *z = arg;
    unsigned char *shuf = NULL; /* this worker's shuffled copy of a chunk */
    pthread_mutex_lock(&z->mu);
    for (;;) {
        job_t *j = NULL;
        /* the oldest queued job first, so chunks finish roughly in order */
        uint64_t best = UINT64_MAX;
        for (int i = 0; i < z->depth; i++)
            if (z->jobs[i].state == JOB_QUEUED && z->jobs[i].seq < best) {
                best = z->jobs[i].seq;
                j = &z->jobs[i];
            }
        if (!j) {
            if (z->stop)
                break;
            pthread_cond_wait(&z->cv_work, &z->mu);
            continue;
        }
        j->state = JOB_BUSY;
        pthread_mutex_unlock(&z->mu);

        const unsigned char *src = j->raw;
        int zr = Z_OK;
        if (z->shuffle) {
            if (!shuf)
                shuf = malloc(z->chunk_bytes);
            if (shuf) {
                shuffle(shuf, j->raw, z->chunk_bytes, z->esize);
                src = shuf;
            } else {
                zr = Z_MEM_ERROR;
            }
        }
        uLongf zl = (uLongf)z->zcap;
        if (zr == Z_OK)
            zr = compress2(j->z, &zl, src, (uLong)z->chunk_bytes, z->level);

        pthread_mutex_lock(&z->mu);
        j->zlen = (size_t)zl;
        j->err = zr == Z_OK ? 0 : zr;
        j->state = JOB_DONE;
        pthread_cond_broadcast(&z->cv_done);
    }
    pthread_mutex_unlock(&z->mu);
    free(shuf);
    return NULL;
}

void eplb_zpool_destroy(eplb_zpool_t *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->mu);
    z->stop = 1;
    /* drop queued work so the workers exit promptly */
    for (int i = 0; z->jobs && i < z->depth; i++) /* jobs: NULL if its calloc failed */
        if (z->jobs[i].state == JOB_QUEUED)
            z->jobs[i].state = JOB_FREE;
    pthread_cond_broadcast(&z->cv_work);
    pthread_mutex_unlock(&z->mu);
    for (int i = 0; i < z->nthreads; i++)
        pthread_join(z->th[i], NULL);
    for (int i = 0; z->jobs && i < z->depth; i++) {
        free(z->jobs[i].raw);
        free(z->jobs[i].z);
    }
    free(z->jobs);
    pthread_cond_destroy(&z->cv_done);
    pthread_cond_destroy(&z->cv_work);
    pthread_mutex_destroy(&z->mu);
    free(z);
}

eplb_status_t eplb_zpool_create(eplb_zpool_t **out, int nthreads, size_t chunk_bytes,
                                size_t esize, int do_shuffle, int level, int depth)
{
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > MAX_WORKERS)
        nthreads = MAX_WORKERS;
    eplb_zpool_t *z = calloc(1, sizeof *z);
    if (!z)
        return eplb_error_set(EPLB_ERR_NOMEM, "compression pool: out of memory");
    z->chunk_bytes = chunk_bytes;
    z->esize = esize;
    z->shuffle = do_shuffle && esize > 1;
    z->zcap = (size_t)compressBound((uLong)chunk_bytes);
    z->level = level;
    z->depth = depth;
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->cv_work, NULL);
    pthread_cond_init(&z->cv_done, NULL);
    z->jobs = calloc((size_t)depth, sizeof *z->jobs);
    int ok = z->jobs != NULL;
    for (int i = 0; ok && i < depth; i++) {
        /* untouched pages cost nothing: a short trace uses a few jobs */
        z->jobs[i].raw = malloc(chunk_bytes);
        z->jobs[i].z = malloc(z->zcap);
        ok = z->jobs[i].raw && z->jobs[i].z;
    }
    if (!ok) {
        eplb_zpool_destroy(z);
        return eplb_error_set(EPLB_ERR_NOMEM, "compression pool: out of memory for %d chunks "
                                              "of %zu bytes",
                              depth, chunk_bytes);
    }
    for (; z->nthreads < nthreads; z->nthreads++)
        if (eplb_thread_create(&z->th[z->nthreads], NULL, worker, z) != 0)
            break;
    if (z->nthreads == 0) {
        eplb_zpool_destroy(z);
        return eplb_error_set(EPLB_ERR_INTERNAL, "compression pool: cannot start threads");
    }
    *out = z;
    return EPLB_OK;
}

unsigned char *eplb_zpool_buffer(eplb_zpool_t *z)
{
    unsigned char *b = NULL;
    pthread_mutex_lock(&z->mu);
    /* chunks already taken back (their data pointer is now stale) */
    for (int i = 0; i < z->depth; i++)
        if (z->jobs[i].state == JOB_DONE && z->jobs[i].seq < z->next_out)
            z->jobs[i].state = JOB_FREE;
    for (int i = 0; i < z->depth && !b; i++)
        if (z->jobs[i].state == JOB_FREE) {
            z->jobs[i].state = JOB_FILLING;
            z->jobs[i].seq = UINT64_MAX; /* not submitted yet */
            b = z->jobs[i].raw;
        }
    pthread_mutex_unlock(&z->mu);
    return b;
}

void eplb_zpool_submit(eplb_zpool_t *z, unsigned char *buf, uint64_t rows)
{
    pthread_mutex_lock(&z->mu);
    for (int i = 0; i < z->depth; i++)
        if (z->jobs[i].raw == buf) {
            z->jobs[i].rows = rows;
            z->jobs[i].seq = z->next_seq++;
            z->jobs[i].state = JOB_QUEUED;
            break;
        }
    pthread_cond_signal(&z->cv_work);
    pthread_mutex_unlock(&z->mu);
}

int eplb_zpool_pending(const eplb_zpool_t *z) { return (int)(z->next_seq - z->next_out); }

eplb_status_t eplb_zpool_next(eplb_zpool_t *z, const void **data, size_t *len, uint64_t *rows)
{
    eplb_status_t st = EPLB_OK;
    pthread_mutex_lock(&z->mu);
    /* the buffer handed out by the previous call becomes free now */
    for (int i = 0; i < z->depth; i++)
        if (z->jobs[i].state == JOB_DONE && z->jobs[i].seq < z->next_out)
            z->jobs[i].state = JOB_FREE;
    if (z->next_out == z->next_seq) {
        pthread_mutex_unlock(&z->mu);
        return eplb_error_set(EPLB_ERR_INTERNAL, "compression pool: nothing pending");
    }
    job_t *j = NULL;
    for (int i = 0; i < z->depth; i++)
        if (z->jobs[i].seq == z->next_out && z->jobs[i].state != JOB_FREE)
            j = &z->jobs[i];
    while (j->state != JOB_DONE)
        pthread_cond_wait(&z->cv_done, &z->mu);
    z->next_out++;
    if (j->err)
        st = eplb_error_set(EPLB_ERR_INTERNAL, "compression pool: zlib compress2 failed (%d)",
                            j->err);
    *data = j->z;
    *len = j->zlen;
    *rows = j->rows;
    pthread_mutex_unlock(&z->mu);
    return st;
}
