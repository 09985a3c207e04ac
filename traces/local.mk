# traces/local.mk: files of traces/ (included by Makefile.am)
