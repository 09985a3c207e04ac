# policies/local.mk: files of policies/ (included by Makefile.am)
libeplb_a_SOURCES += policies/policy.h policies/policy_impl.h policies/common.c \
	policies/placement.c policies/args.c policies/registry.c \
	policies/deepseek.c policies/global.c policies/deepseek_preserve.c \
	policies/nodup.c policies/lpt.c policies/vec.c policies/migration.c \
	policies/none.c

if HAVE_CRITERION
tests_eplb_tests_SOURCES += tests/test_policies.c tests/test_rebalance_cli.c
endif
