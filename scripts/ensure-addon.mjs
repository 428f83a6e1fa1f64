#!/usr/bin/env node
// Builds the native addon with node-gyp when the build is missing or stale, so that
// `npm test`, `npm run demo` and `npm run bench` never run against an old binary.
//
// Stale means: a file under native/, or binding.gyp, is newer than
// build/Release/forksafe.node. A build configured by node-gyp is rebuilt
// incrementally (`node-gyp build`); anything else (no build, or one made by
// cmake-js) gets `node-gyp rebuild`. A prebuild in prebuilds/ is not consulted:
// this script is for a checkout, where the sources are the truth.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'forksafe.node');

function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs; // a deleted file shows as a newer directory
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

const built = existsSync(addon) ? statSync(addon).mtimeMs : 0;
const sources = Math.max(newestMtime(join(root, 'native')), newestMtime(join(root, 'binding.gyp')));
if (built && built >= sources) process.exit(0);

// node-gyp from devDependencies, else the one npm puts on PATH for scripts.
let nodeGyp;
try {
  const require = createRequire(join(root, 'package.json'));
  nodeGyp = [process.execPath, join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js')];
} catch {
  nodeGyp = ['node-gyp'];
}
const configured = existsSync(join(root, 'build', 'config.gypi')) && existsSync(join(root, 'build', 'Makefile'));
const args = [...nodeGyp.slice(1), configured ? 'build' : 'rebuild', '--jobs=2'];
console.error(`ensure-addon: ${built ? 'sources changed' : 'no addon built'}; running node-gyp ${args.slice(nodeGyp.length - 1).join(' ')}`);
const res = spawnSync(nodeGyp[0], args, { cwd: root, stdio: 'inherit' });
process.exit(res.status ?? 1);
