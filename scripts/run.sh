#!/usr/bin/env bash
# Install what is missing, build a release binary and run Estuary in the foreground on its
# embedded default configuration (conf/estuary.yaml). Arguments are passed to estuary, e.g.
#   scripts/run.sh -c conf/estuary.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DESTUARY_TESTS=OFF > /dev/null
cmake --build build -j"$(nproc)"
echo "run.sh: starting build/estuary $* (Ctrl-C stops it)"
exec build/estuary "$@"
