#!/bin/sh
# Generate configure and Makefile.in (autoconf + automake; no libtool needed).
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf -fi
