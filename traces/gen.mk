# traces/gen.mk: synthetic generator and importers (included by Makefile.am)
libeplb_a_SOURCES += traces/gen.h traces/gen.c traces/presets.c \
	traces/import.h traces/import_esft.c traces/import_sglang.c
if HAVE_CRITERION
tests_eplb_tests_SOURCES += tests/test_gen.c tests/test_import.c
endif
EXTRA_DIST += traces/README.md traces/LICENSE.esft traces/esft-intent.h5 \
	traces/dsv3-small.h5
