// The package entry points: `require` and `import` give the same module
// instance (one addon load, one set of classes), and the types ship.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as cjs from '../dist/index.js';

// A real dynamic import (the test loader compiles `import()` to require()).
const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<Record<string, unknown>>;
const root = path.join(__dirname, '..');

t.test('ESM and CJS share one instance', async (t) => {
  const esm = await dynamicImport(pathToFileURL(path.join(root, 'dist', 'index.mjs')).href);
  for (const name of ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Event', 'Condition', 'Barrier',
    'SharedMemory', 'Process', 'getContext', 'getStartMethods', 'attach', 'ForksafeError', 'ContextError',
    'OwnerDiedError', 'NotOwnerError', 'DeadlockError', 'NotRecoverableError', 'ClosedError',
    'ForkUnsafeError', 'BrokenBarrierError']) {
    t.ok(esm[name], `ESM exports ${name}`);
    t.equal(esm[name], (cjs as Record<string, unknown>)[name], `${name} is the same object`);
  }
  const lock = new (esm.Lock as typeof cjs.Lock)();
  t.ok(lock instanceof cjs.Lock, 'an ESM-made Lock is a CJS Lock');
  lock.close();
});

t.test('package.json entry points and types exist', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  t.equal(pkg.name, 'forksafe');
  for (const rel of [pkg.main, pkg.types, pkg.exports['.'].import.default, pkg.exports['.'].import.types]) {
    t.ok(fs.existsSync(path.join(root, rel)), `${rel} exists`);
  }
  const dts = fs.readFileSync(path.join(root, 'dist', 'index.d.ts'), 'utf8');
  t.match(dts, /Lock/, 'declarations name the classes');
});

t.test('the package resolves by its own name', async (t) => {
  // `require('forksafe')` from inside the package resolves through "exports" (self-reference).
  const viaName = require(require.resolve('forksafe', { paths: [root] }));
  t.equal(viaName.Lock, cjs.Lock);
});
