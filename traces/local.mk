# traces/local.mk: files of traces/ (included by Makefile.am)
libeplb_a_SOURCES += traces/trace.h traces/trace_impl.h traces/h5util.h \
	traces/h5util.c traces/writer.c traces/reader.c traces/probe.c traces/parallel.c \
	traces/zpool.h traces/zpool.c traces/adler32.h traces/adler32.c
if HAVE_CRITERION
tests_eplb_tests_SOURCES += tests/test_traces.c tests/test_trace_errors.c \
	tests/test_adler32.c
endif
EXTRA_DIST += traces/FORMAT.md traces/eplb_record.py
