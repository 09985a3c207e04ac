# kernels/local.mk: files of kernels/ (included by Makefile.am)
libeplb_a_SOURCES += kernels/kernels.h kernels/rules.h kernels/route_cpu.c \
	kernels/select_cpu.c

if HAVE_CRITERION
tests_eplb_tests_SOURCES += tests/test_kernels.c
endif
