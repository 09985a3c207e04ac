/* nccl_impl.h - NCCL loaded at run time (kernels/nccl.cu), for the .cu
 * files of kernels/ that use it (CUDA C++ only, builds with nccl.h).
 *
 * The program does not link libnccl: where libnccl.so.2 is missing it
 * starts and runs everything else (house style 10), and only a command
 * that needs NCCL fails, naming the library.  nccl.h gives the types;
 * the functions are the pointers below, resolved by dlsym. */
#ifndef EPLB_NCCL_IMPL_H
#define EPLB_NCCL_IMPL_H

#include <nccl.h>

#include "eplb.h"

typedef struct {
    int version; /* ncclGetVersion's code: 22809 = 2.28.9 */
    ncclResult_t (*GetVersion)(int *version);
    const char *(*GetErrorString)(ncclResult_t result);
    ncclResult_t (*CommInitAll)(ncclComm_t *comms, int ndev, const int *devlist);
    ncclResult_t (*CommDestroy)(ncclComm_t comm);
    ncclResult_t (*CommAbort)(ncclComm_t comm);
    ncclResult_t (*CommGetAsyncError)(ncclComm_t comm, ncclResult_t *async_error);
    ncclResult_t (*GroupStart)(void);
    ncclResult_t (*GroupEnd)(void);
    ncclResult_t (*Send)(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                         ncclComm_t comm, cudaStream_t stream);
    ncclResult_t (*Recv)(void *recvbuff, size_t count, ncclDataType_t datatype, int peer,
                         ncclComm_t comm, cudaStream_t stream);
} eplb_nccl_t;

/* The library, loaded at the first call (dlopen of the environment's
 * EPLB_NCCL_LIB where set, else EPLB_NCCL_LIB; later calls give the same
 * table or the same error).  EPLB_ERR_UNSUPPORTED
 * naming the library when it cannot be loaded, lacks one of the
 * functions or is older than 2.7 (no ncclSend/ncclRecv). */
#define EPLB_NCCL_LIB "libnccl.so.2"
eplb_status_t eplb_nccl_load(const eplb_nccl_t **out);

/* "2.28.9" from a version code (codes of 2.8 and older: 2803). */
void eplb_nccl_version_text(char *buf, size_t size, int code);

/* Set the message for NCCL's result r of call `what` and return
 * EPLB_ERR_CUDA (the project's status for device-library failures). */
eplb_status_t eplb_nccl_fail(ncclResult_t r, const char *what, const char *file, int line);

#define EPLB_NCCL_CHECK_GOTO(expr, st, label)                                 \
    do {                                                                      \
        ncclResult_t eplb_nr_ = (expr);                                       \
        if (eplb_nr_ != ncclSuccess) {                                        \
            (st) = eplb_nccl_fail(eplb_nr_, #expr, __FILE__, __LINE__);       \
            goto label;                                                       \
        }                                                                     \
    } while (0)

#endif
