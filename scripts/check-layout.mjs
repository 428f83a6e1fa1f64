#!/usr/bin/env node
// Checks the layering of lib/ (docs/ARCHITECTURE.md, "Layout"):
//   - each folder imports only the folders below it (RULES);
//   - no import circle between files, counting every kind of import: static
//     `import`/`export ... from`, `import type`, `require()` and `import()`
//     written inside functions (a lazy require is still a circle);
//   - lib/core/binding.ts is the only file that loads the addon.
//
//   node scripts/check-layout.mjs           prints the problems, exits 1 if any
//   import { checkLayout } from ...         returns { files, edges, problems }
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// Folder → the folders it may import (besides itself). '.' is lib/ itself: the
// public surface (index.ts, context.ts).
export const RULES = {
  core: [],
  sync: ['core'],
  fork: ['core'],
  ipc: ['core', 'sync', 'fork'],
  process: ['core', 'sync', 'fork'],
  pool: ['core', 'sync', 'fork', 'ipc', 'process'],
  '.': ['core', 'sync', 'fork', 'ipc', 'process', 'pool'],
};

const IMPORT = /(?:\bfrom\s*|\brequire\(\s*|\bimport\(\s*|^\s*import\s+)(['"])(\.{1,2}\/[^'"]+)\1/gm;
const ADDON = /node-gyp-build|\.node['"]|process\.dlopen/;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

function stripComments(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

export function checkLayout(lib = join(root, 'lib')) {
  const files = walk(lib).map((p) => relative(lib, p).split(sep).join('/')).sort();
  const known = new Set(files);
  const folderOf = (f) => (f.includes('/') ? f.slice(0, f.indexOf('/')) : '.');
  const problems = [];
  const edges = new Map(files.map((f) => [f, new Set()]));
  for (const f of files) {
    const src = stripComments(readFileSync(join(lib, f), 'utf8'));
    if (ADDON.test(src) && f !== 'core/binding.ts') problems.push(`${f} loads the addon (only core/binding.ts may)`);
    if (!(folderOf(f) in RULES)) problems.push(`${f}: folder '${folderOf(f)}' has no rule in scripts/check-layout.mjs`);
    for (const m of src.matchAll(IMPORT)) {
      let target = join(dirname(f), m[2]).split(sep).join('/');
      if (!target.endsWith('.ts')) target += '.ts';
      if (!known.has(target)) {
        const asIndex = target.replace(/\.ts$/, '/index.ts');
        if (known.has(asIndex)) target = asIndex;
        else {
          problems.push(`${f} imports '${m[2]}', which is not a file of lib/`);
          continue;
        }
      }
      edges.get(f).add(target);
      const from = folderOf(f);
      const to = folderOf(target);
      if (from !== to && !(RULES[from] ?? []).includes(to)) {
        problems.push(`${f} imports ${target}: '${from}' may import only ${RULES[from]?.length ? RULES[from].join(', ') : 'nothing outside itself'}`);
      }
    }
  }
  // Circles: depth-first search, reporting each cycle once (by its smallest rotation).
  const state = new Map();
  const stack = [];
  const seen = new Set();
  const visit = (f) => {
    state.set(f, 1);
    stack.push(f);
    for (const g of edges.get(f)) {
      if (state.get(g) === 1) {
        const cyc = stack.slice(stack.indexOf(g));
        const k = cyc.indexOf([...cyc].sort()[0]);
        const key = [...cyc.slice(k), ...cyc.slice(0, k)].join(' -> ');
        if (!seen.has(key)) {
          seen.add(key);
          problems.push(`import circle: ${key} -> ${cyc[k]}`);
        }
      } else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of files) if (!state.has(f)) visit(f);
  return { files, edges, problems };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { files, edges, problems } = checkLayout();
  let n = 0;
  for (const s of edges.values()) n += s.size;
  for (const p of problems) console.log(`check-layout: ${p}`);
  console.log(`check-layout: ${files.length} files, ${n} imports, ${problems.length} problem(s)`);
  process.exit(problems.length ? 1 : 0);
}
