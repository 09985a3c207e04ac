/* fake_nccl.c - a stand-in for libnccl.so.2 with the ten functions
 * kernels/nccl.cu looks up, for tests/test_a2a.c (EPLB_NCCL_LIB names it):
 * ncclGetVersion reports EPLB_FAKE_NCCL_VERSION (default 2604, NCCL 2.6.4,
 * older than the 2.7 the program needs), and every other call fails with
 * ncclInternalError (3), so nothing is ever exchanged.  Built only where
 * the build has NCCL (tests/local.mk). */
#include <stddef.h>
#include <stdlib.h>

/* NCCL's types as the ABI sees them: ncclResult_t and ncclDataType_t are
 * enums (int), communicators and streams pointers */
typedef int result_t;
enum { FAKE_INTERNAL_ERROR = 3 };

result_t ncclGetVersion(int *version);
const char *ncclGetErrorString(result_t r);
result_t ncclCommInitAll(void **comms, int ndev, const int *devlist);
result_t ncclCommDestroy(void *comm);
result_t ncclCommAbort(void *comm);
result_t ncclCommGetAsyncError(void *comm, result_t *err);
result_t ncclGroupStart(void);
result_t ncclGroupEnd(void);
result_t ncclSend(const void *buf, size_t count, int type, int peer, void *comm, void *stream);
result_t ncclRecv(void *buf, size_t count, int type, int peer, void *comm, void *stream);

result_t ncclGetVersion(int *version)
{
    const char *v = getenv("EPLB_FAKE_NCCL_VERSION");
    *version = v && *v ? atoi(v) : 2604;
    return 0;
}

const char *ncclGetErrorString(result_t r) { return r ? "fake NCCL: no exchange" : "no error"; }

result_t ncclCommInitAll(void **comms, int ndev, const int *devlist)
{
    (void)comms, (void)ndev, (void)devlist;
    return FAKE_INTERNAL_ERROR;
}

result_t ncclCommDestroy(void *comm)
{
    (void)comm;
    return FAKE_INTERNAL_ERROR;
}
result_t ncclCommAbort(void *comm)
{
    (void)comm;
    return FAKE_INTERNAL_ERROR;
}

result_t ncclCommGetAsyncError(void *comm, result_t *err)
{
    (void)comm;
    *err = FAKE_INTERNAL_ERROR;
    return FAKE_INTERNAL_ERROR;
}

result_t ncclGroupStart(void) { return FAKE_INTERNAL_ERROR; }
result_t ncclGroupEnd(void) { return FAKE_INTERNAL_ERROR; }

result_t ncclSend(const void *buf, size_t count, int type, int peer, void *comm, void *stream)
{
    (void)buf, (void)count, (void)type, (void)peer, (void)comm, (void)stream;
    return FAKE_INTERNAL_ERROR;
}

result_t ncclRecv(void *buf, size_t count, int type, int peer, void *comm, void *stream)
{
    (void)buf, (void)count, (void)type, (void)peer, (void)comm, (void)stream;
    return FAKE_INTERNAL_ERROR;
}
