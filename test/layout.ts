// The layering of lib/ (docs/ARCHITECTURE.md, "Layout"): folders import only
// the folders below them, no import circle (lazy require()s included), one
// loader of the addon. scripts/check-layout.mjs does the checking; here it is
// run on lib/ and, to show it can fail, on small trees that break each rule.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

const ROOT = path.join(__dirname, '..');
const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<Record<string, unknown>>;
type Check = (lib?: string) => { files: string[]; edges: Map<string, Set<string>>; problems: string[] };
const load = async (): Promise<Check> =>
  (await dynamicImport(pathToFileURL(path.join(ROOT, 'scripts', 'check-layout.mjs')).href)).checkLayout as Check;

function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-layout-'));
  for (const [rel, src] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), src);
  }
  return dir;
}

t.test('lib/: layering, no circle, one addon loader', async (t) => {
  const check = await load();
  const { files, edges, problems } = check();
  t.same(problems, [], 'no problem');
  for (const folder of ['core', 'sync', 'fork', 'process']) {
    t.ok(files.some((f) => f.startsWith(`${folder}/`)), `lib/${folder}/ has files`);
  }
  t.same(files.filter((f) => !f.includes('/')).sort(), ['bootstrap.ts', 'context.ts', 'forkserver-main.ts', 'index.ts'],
    'the top: index.ts, context.ts and the two entry programs');
  const importersOfContext = [...edges].filter(([, to]) => to.has('context.ts')).map(([f]) => f).sort();
  t.same(importersOfContext, ['bootstrap.ts', 'forkserver-main.ts', 'index.ts'], 'only the top imports context.ts');
  const coreOut = [...edges].filter(([f]) => f.startsWith('core/')).flatMap(([f, to]) => [...to].filter((g) => !g.startsWith('core/')).map((g) => `${f} -> ${g}`));
  t.same(coreOut, [], 'core imports nothing outside core');
});

t.test('the checker finds what breaks a rule', async (t) => {
  const check = await load();
  const dirs: string[] = [];
  t.teardown(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const run = (files: Record<string, string>): string[] => {
    const d = tree(files);
    dirs.push(d);
    return check(d).problems;
  };
  t.same(run({ 'index.ts': "import './core/a';", 'core/a.ts': 'export const a = 1;' }), [], 'a clean tree: nothing');
  t.match(run({ 'core/a.ts': "import { b } from '../sync/b';", 'sync/b.ts': 'export const b = 1;' }),
    [/core\/a\.ts imports sync\/b\.ts/], 'core importing sync');
  t.match(run({ 'sync/a.ts': "export function f() { return require('../context'); }", 'context.ts': '' }),
    [/sync\/a\.ts imports context\.ts/], 'a lazy require of the surface');
  t.match(run({ 'core/a.ts': "import type { B } from './b';\nexport type A = 1;", 'core/b.ts': "import { A } from './a';\nexport type B = A;" }),
    [/import circle: core\/a\.ts -> core\/b\.ts -> core\/a\.ts/], 'a circle inside a folder (type imports count)');
  t.match(run({ 'sync/a.ts': "const b = require('node-gyp-build');" }), [/loads the addon/], 'another addon loader');
  t.match(run({ 'misc/a.ts': '' }), [/folder 'misc' has no rule/], 'a folder without a rule');
  t.match(run({ 'core/a.ts': "import './nope';" }), [/not a file of lib/], 'an import of a missing file');
});

t.test('npm-facing entry files and the context getter in the declarations', async (t) => {
  for (const rel of ['index.js', 'index.mjs', 'index.d.ts', 'index.d.mts', 'bootstrap.js', 'forkserver-main.js']) {
    t.ok(fs.existsSync(path.join(ROOT, 'dist', rel)), `dist/${rel}`);
  }
  // `context` is given to the classes by lib/context.ts (module augmentation):
  // a consumer's TypeScript sees it on every class.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-dts-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'use.ts');
  fs.writeFileSync(file, [
    `import { Lock, Condition, SharedMemory, getContext, type StartMethod } from ${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))};`,
    'const m: StartMethod = new Lock().context.method;',
    'const c: typeof Condition = new SharedMemory({ size: 8 }).context.Condition;',
    "const l: typeof Lock = getContext('spawn').Lock;",
    'export { m, c, l };',
  ].join('\n'));
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  let out = '';
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--types', 'node', '--typeRoots', path.join(ROOT, 'node_modules', '@types'), file], { encoding: 'utf8' });
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? e);
  }
  t.equal(out, '', 'a consumer type-checks .context on a Lock and a SharedMemory');
});
