// count_route.cu - the routing kernels specialised for the DeepSeek-V3 shape
// (f32 logits, sigmoid + bias, 256 experts, 8 groups, top-4 groups, top-8,
// renormalise, one layer, route only), for static SASS instruction counts:
// with the run-time shape fixed the compiler drops the other dtypes, modes
// and scorings, so that what is left is the hot path plus the rare
// branches.  Never launched; compiled by kernels/dev/count-sass.sh (offline,
// no GPU needed):
//   nvcc -arch=sm_90 -O3 -std=c++17 -I src -I kernels -I BUILD -cubin \
//        kernels/dev/count_route.cu ; cuobjdump -sass count_route.cubin
#define EPLB_ROUTE_DEVICE_ONLY
#include <cuda_runtime.h>
#pragma push_macro("__global__")
#pragma push_macro("__launch_bounds__")
#undef __global__
#undef __launch_bounds__
#define __global__ __device__ // the kernels become inlinable functions
#define __launch_bounds__(...)
#include "../route.cu"
#pragma pop_macro("__launch_bounds__")
#pragma pop_macro("__global__")

namespace {
__device__ __forceinline__ RouteArgs ds_v3(RouteArgs a)
{
    __builtin_assume(a.bias != nullptr);
    a.dt = EPLB_DTYPE_F32;
    a.L = 1;
    a.E = 256;
    a.K = 8;
    a.G = 8;
    a.TG = 4;
    a.renorm = 1;
    a.sig = 1;
    a.fused = 0;
    a.use_hist = 0;
    return a;
}
} // namespace

// fused with hash selection and the shared histogram, no src_rank
__device__ __forceinline__ RouteArgs ds_v3_fused(RouteArgs a)
{
    a = ds_v3(a);
    a.fused = 1;
    a.use_hist = 1;
    a.sp.mode = EPLB_SELECT_HASH;
    a.sp.trow = nullptr;
    a.sp.E = 256;
    a.sp.P = 288;
    a.hash_fast = 1;
    return a;
}

// the warp kernel (--variant 8; the default up to run 8)
__global__ void __launch_bounds__(256, 4) count_warp(RouteArgs a)
{
    route_warp_kernel<8, false, 4>(ds_v3(a));
}

__global__ void __launch_bounds__(256, 4) count_seg_exact(RouteArgs a)
{
    route_seg_kernel<8, 8, false, 256, 4, EPLB_DTYPE_F32, false, 0, 1>(ds_v3(a));
}

__global__ void __launch_bounds__(256, 4) count_seg_fast(RouteArgs a)
{
    route_seg_kernel<8, 8, true, 256, 4, EPLB_DTYPE_F32, false, 0, 1>(ds_v3(a));
}

__global__ void __launch_bounds__(256, 4) count_warp_fused(RouteArgs a)
{
    route_warp_kernel<8, false, 4>(ds_v3_fused(a));
}

__global__ void __launch_bounds__(256, 4) count_seg_fast_fused(RouteArgs a)
{
    route_seg_kernel<8, 8, true, 256, 4, EPLB_DTYPE_F32, false, 1, 3>(ds_v3_fused(a));
}
