# kernels/local.mk: files of kernels/ (included by Makefile.am)
libeplb_a_SOURCES += kernels/kernels.h kernels/rules.h kernels/plan_flow.h kernels/route_cpu.c \
	kernels/select_cpu.c kernels/traffic_cpu.c

if HAVE_CUDA
libeplb_a_SOURCES += kernels/gpu_impl.h kernels/gpu.cu kernels/route.cu \
	kernels/select.cu kernels/traffic.cu
else
libeplb_a_SOURCES += kernels/gpu_stub.c
endif

# NCCL (HAVE_NCCL implies HAVE_CUDA): nccl.h for the types only; the
# library is loaded at run time by kernels/nccl.cu, never linked
if HAVE_NCCL
libeplb_a_SOURCES += kernels/nccl_impl.h kernels/nccl.cu kernels/a2a.cu
else
libeplb_a_SOURCES += kernels/a2a_stub.c
endif

# CUDA sources: one suffix rule (house style 11); nvcc gets no -Werror.
.cu.o:
	@$(MKDIR_P) $(@D)
	$(AM_V_GEN)$(NVCC) $(NVCC_ARCH) -O3 -std=c++17 -Xcompiler -fPIC \
		$(AM_CPPFLAGS) -c $< -o $@

if HAVE_CRITERION
tests_eplb_tests_SOURCES += tests/test_kernels.c tests/test_traffic.c
endif

# GPU tests: a plain program (no Criterion on the GPU machine); exit 77 =
# skipped where there is no usable GPU.
if HAVE_CUDA
check_PROGRAMS += tests/gpu_tests
TESTS += tests/gpu_tests
tests_gpu_tests_SOURCES = tests/gpu_tests.c
tests_gpu_tests_LDADD = $(EPLB_LIBS)
endif
