# tests/local.mk: suites that are not owned by one module folder.
if HAVE_CRITERION
tests_eplb_tests_SOURCES += tests/test_core.c tests/test_json.c tests/test_progress.c \
	tests/test_pool.c tests/test_bench.c tests/test_a2a.c \
	tests/test_h5py.c tests/test_bad_input.c \
	tests/test_input_files.c tests/test_write_errors.c tests/lib/trace_fixtures.h \
	tests/lib/trace_fixtures.c tests/test_alloc_fail.c tests/test_plan_rules.c
endif
# the LD_PRELOAD library of test_alloc_fail.c and scripts/alloc_sweep.sh (a
# shared object built as a program: no libtool); without the sanitizers,
# which own malloc there
check_PROGRAMS += tests/alloc_fail.so
tests_alloc_fail_so_SOURCES = tests/lib/alloc_fail.c
tests_alloc_fail_so_CFLAGS = -fPIC $(WARN_CFLAGS)
tests_alloc_fail_so_LDFLAGS = -shared
tests_alloc_fail_so_LDADD = -ldl
# a stand-in libnccl.so.2 for test_a2a.c (an NCCL older than 2.7 refused),
# in builds with NCCL
if HAVE_NCCL
check_PROGRAMS += tests/fake_nccl.so
tests_fake_nccl_so_SOURCES = tests/lib/fake_nccl.c
tests_fake_nccl_so_CFLAGS = -fPIC $(WARN_CFLAGS)
tests_fake_nccl_so_LDFLAGS = -shared
else
EXTRA_DIST += tests/lib/fake_nccl.c
endif
# run by test_h5py.c (python_recorder_traces_replay)
EXTRA_DIST += tests/record_check.py
# the balanced plan's independent checks: test_kernels.c and gpu_tests.c
EXTRA_DIST += tests/lib/plan_check.h
