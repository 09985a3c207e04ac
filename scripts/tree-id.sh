#!/bin/bash
# scripts/tree-id.sh [DIR] - one hash for the files of a working tree
# (tracked and untracked-not-ignored, by path and content), so that a run
# on the device machine, whose copy of .git lags behind, can be matched to
# a commit: scripts/device.sh prints it, and `scripts/tree-id.sh` on a
# clean checkout of that commit prints the same.
set -eu
cd "${1:-$(dirname "$0")/..}"
git ls-files -co --exclude-standard -z | LC_ALL=C sort -z |
    xargs -0 sha1sum 2>/dev/null | sha1sum | cut -c1-12
