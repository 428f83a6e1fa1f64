#!/usr/bin/env node
// `npm test`: runs tap (configured in package.json "tap": test/*.ts, --expose-gc,
// 120 s per file, 2 jobs) with its own output shown as usual, then prints one last
// line `N passed, N failed[, N skipped]` and exits non-zero if anything failed.
//
// The counts are test points (assertions), read from the raw TAP stream that tap
// saves for every test file: a leaf point is one assertion; the closing point of a
// subtest is not counted again. A file whose stream fails without a failing point
// (crash, signal, timeout, plan mismatch, bail out) counts as one failure, and so
// does a non-zero exit of tap with nothing else failed (e.g. no test files).
// Extra arguments go to tap: `npm test -- test/lock.ts`.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser } from 'tap-parser';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const tapPkg = require('tap/package.json');
const tapBin = join(dirname(require.resolve('tap/package.json')), tapPkg.bin.tap ?? tapPkg.bin);

// A fresh directory for this run's TAP streams (.tap/test-results keeps old files).
const outDir = mkdtempSync(join(tmpdir(), 'forksafe-tap-'));

const tap = spawn(process.execPath, [tapBin, `--output-dir=${outDir}`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
const forward = (sig) => tap.kill(sig);
process.on('SIGINT', forward).on('SIGTERM', forward);
const [code, signal] = await new Promise((resolve) => tap.on('close', (c, s) => resolve([c, s])));

function* tapFiles(dir) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* tapFiles(path);
    else if (entry.endsWith('.tap')) yield path;
  }
}

function count(text) {
  const tally = { passed: 0, failed: 0, skipped: 0, ok: true };
  const parser = new Parser();
  const watch = (p) => {
    p.on('assert', (res) => {
      if (res.closingTestPoint) return; // the subtest's own points were counted
      if (!res.ok && !res.todo) tally.failed++;
      else if (res.skip || res.todo) tally.skipped++;
      else tally.passed++;
    });
    p.on('child', watch);
  };
  watch(parser);
  parser.on('complete', (results) => (tally.ok = results.ok));
  parser.end(text);
  return tally;
}

const total = { passed: 0, failed: 0, skipped: 0 };
for (const file of tapFiles(outDir)) {
  const tally = count(readFileSync(file, 'utf8'));
  total.passed += tally.passed;
  total.skipped += tally.skipped;
  total.failed += tally.failed;
  if (!tally.ok && tally.failed === 0) {
    console.log(`# ${relative(outDir, file).replace(/\.tap$/, '')}: failed without a failing assertion (crash, timeout or bad plan)`);
    total.failed++;
  }
}
rmSync(outDir, { recursive: true, force: true });

if ((code !== 0 || signal) && total.failed === 0) {
  console.log(`# tap exited with ${signal ?? `code ${code}`}`);
  total.failed = 1;
}
console.log(`${total.passed} passed, ${total.failed} failed` + (total.skipped ? `, ${total.skipped} skipped` : ''));
process.exit(total.failed > 0 ? 1 : 0);
