# sim/local.mk: files of sim/ (included by Makefile.am)
libeplb_a_SOURCES += sim/sim.h sim/sim_impl.h sim/results.h sim/profile.c \
	sim/cost.c sim/transfer.c sim/trigger.c sim/source.c sim/run.c sim/replay.c \
	sim/results.c sim/output.c sim/a2a_fit.c
EXTRA_DIST += sim/profiles/h100-8gpu-ib400.txt sim/profiles/measure_gemm.py
if HAVE_CRITERION
tests_eplb_tests_SOURCES += tests/test_sim.c tests/test_run_cli.c tests/test_source.c \
	tests/lib/sim_fixtures.h tests/lib/sim_fixtures.c
endif
