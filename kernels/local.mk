# kernels/local.mk: files of kernels/ (included by Makefile.am)
