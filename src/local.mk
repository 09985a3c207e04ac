# src/local.mk: the program's command files (kept in libeplb.a so that tests
# can link them too; main.c is the only file outside the library).
libeplb_a_SOURCES += src/cmd_bench.c src/cmd_run.c src/cmd_info.c \
	src/cmd_gen.c src/cmd_import.c src/cmd_rebalance.c \
	src/bench_io.c src/bench_kernels.c src/bench_policy.c src/bench_sim.c \
	src/bench_a2a.c
libeplb_a_SOURCES += src/cli_util.h src/cli_util.c src/decimal.h src/decimal.c
libeplb_a_SOURCES += src/tmpfile_guard.h src/tmpfile_guard.c
libeplb_a_SOURCES += src/progress.h src/progress.c
libeplb_a_SOURCES += src/pool.h src/pool.c
