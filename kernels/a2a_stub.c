/* a2a_stub.c - the NCCL all-to-all measurement in builds without CUDA or
 * without nccl.h (kernels/a2a.cu otherwise): every call says what the
 * build lacks.  Separate from gpu_stub.c, which builds with CUDA replace
 * whole: a build with CUDA but no nccl.h needs this stub and the GPU
 * kernels. */
#include "kernels.h"

int eplb_a2a_built(void) { return 0; }

eplb_status_t eplb_a2a_measure(eplb_a2a_point_t *points, eplb_a2a_info_t *info, const size_t *sizes,
                               int nsizes, const eplb_a2a_opts_t *o)
{
    (void)points, (void)info, (void)sizes, (void)nsizes, (void)o;
    if (!eplb_gpu_built())
        return eplb_error_set(EPLB_ERR_UNSUPPORTED,
                              "this build has no CUDA, so no NCCL (configure --with-cuda "
                              "--with-nccl on a machine with the CUDA toolkit and nccl.h)");
    return eplb_error_set(EPLB_ERR_UNSUPPORTED,
                          "this build has no NCCL (configure found no nccl.h, or was given "
                          "--without-nccl): install the NCCL headers, e.g. libnccl-dev, and "
                          "configure --with-nccl");
}
