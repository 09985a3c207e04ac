# policies/local.mk: files of policies/ (included by Makefile.am)
