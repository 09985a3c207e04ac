# sim/local.mk: files of sim/ (included by Makefile.am)
