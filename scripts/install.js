#!/usr/bin/env node
// `npm install forksafe` runs this (package.json "install"). It ships in the package.
//
// 1. If a native addon loads already — a prebuild in prebuilds/<platform>-<arch>/
//    matching this libc (glibc or musl) and N-API, or a build/Release from an
//    earlier source build — there is nothing to do: no compiler is needed.
// 2. Otherwise it says why the prebuild did not load and builds from source with
//    node-gyp, when the tools for that are here (python3, make, a C++ compiler).
// 3. When they are not, it fails with a message naming what is missing and how
//    to get it, instead of node-gyp's gyp errors.
// `npm install --build-from-source` (npm_config_build_from_source=true) skips 1.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const say = (msg) => process.stderr.write(`forksafe: ${msg}\n`);

/** Loads the addon the way lib/core/binding.ts does, in a child (a crash there is not ours). */
function tryLoad() {
  const code = `const b = require('node-gyp-build')(${JSON.stringify(root)}); if (typeof b.init !== 'function') throw new Error('not the forksafe addon');`;
  const r = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8' });
  if (r.status === 0) return null;
  const text = `${r.stderr || ''}`.split('\n').find((l) => /Error|error:|No native build/.test(l)) || `exit ${r.status ?? r.signal}`;
  return text.trim();
}

function onPath(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

function nodeGyp() {
  // npm tells its scripts where its own node-gyp is; a node-gyp beside us comes next.
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && fs.existsSync(fromNpm)) return [process.execPath, fromNpm];
  try {
    const pkg = require.resolve('node-gyp/package.json', { paths: [root] });
    const bin = require(pkg).bin;
    return [process.execPath, path.join(path.dirname(pkg), typeof bin === 'string' ? bin : bin['node-gyp'])];
  } catch {
    return onPath('node-gyp') ? ['node-gyp'] : null;
  }
}

const libc = (() => {
  try {
    return fs.readdirSync('/lib').some((f) => f.startsWith('ld-musl-')) ? 'musl' : 'glibc';
  } catch {
    return 'glibc';
  }
})();
const where = `${process.platform}-${process.arch} (${process.platform === 'linux' ? libc : process.platform})`;

const fromSource = process.env.npm_config_build_from_source === 'true';
if (!fromSource) {
  const why = tryLoad();
  if (why === null) process.exit(0);
  say(`no prebuilt binary loads on ${where}: ${why}`);
} else {
  say('building from source (--build-from-source)');
}

if (process.platform !== 'linux') {
  say(`${process.platform} is not supported yet: forksafe runs on Linux (see docs/install.md)`);
  process.exit(1);
}

const missing = [];
if (!onPath('python3') && !onPath('python')) missing.push('python3');
if (!onPath('make')) missing.push('make');
if (!['c++', 'g++', 'clang++'].some(onPath) && !process.env.CXX) missing.push('a C++17 compiler (g++ or clang++)');
const gyp = nodeGyp();
if (!gyp) missing.push('node-gyp (it comes with npm; run the install through npm)');
if (missing.length > 0) {
  say(
    `building from source needs ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not on PATH.\n` +
      '  Debian/Ubuntu: apt-get install python3 make g++   Alpine: apk add python3 make g++\n' +
      '  Fedora/RHEL: dnf install python3 make gcc-c++\n' +
      '  then: npm rebuild forksafe   (prebuilt binaries exist for linux-x64 and linux-arm64 with glibc >= 2.28)',
  );
  process.exit(1);
}

say(`building from source with node-gyp on ${where}`);
const r = spawnSync(gyp[0], [...gyp.slice(1), 'rebuild'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  say('the source build failed (its output is above); see docs/install.md');
  process.exit(r.status || 1);
}
const after = tryLoad();
if (after !== null) {
  say(`built, but the addon does not load: ${after}`);
  process.exit(1);
}
say('built from source; it loads');
