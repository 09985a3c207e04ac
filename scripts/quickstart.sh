#!/usr/bin/env bash
# Install the build dependencies (Debian/Ubuntu), build eplb-replay and run
# the main job on the shipped ESFT trace.  Extra arguments go to eplb-replay.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs="build-essential autoconf automake pkg-config libhdf5-dev zlib1g-dev libcriterion-dev"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi

[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure
make -j"$(nproc)"
./eplb-replay traces/esft-intent.h5 "$@"
