#!/bin/sh
# Build the C baselines into bench/baselines/bin/. Idempotent: only rebuilds stale binaries.
set -e
cd "$(dirname "$0")"
CC=${CC:-cc}
mkdir -p bin
for src in mutex_pair futex_pingpong contended fork_floor mpmc_queue memcpy_bw; do
  if [ ! -x "bin/$src" ] || [ "$src.c" -nt "bin/$src" ] || [ common.h -nt "bin/$src" ]; then
    $CC -O2 -pthread -Wall -o "bin/$src" "$src.c"
  fi
done
