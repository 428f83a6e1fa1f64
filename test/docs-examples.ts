// Every code block of README.md and docs/*.md that is a program runs as one, the
// way a user would run it after `npm install forksafe`: written to a temp dir
// whose node_modules/forksafe links to this checkout (package.json "exports" →
// dist/), run with this test's node (process.execPath: whatever line `npm test`
// runs under), bounded, and expected to exit 0 with nothing on stderr.
//
// Blocks, by their fence's language:
//   js, javascript, cjs  a CommonJS program (written as example.cjs)
//   mjs                  an ES-module program (example.mjs)
//   ts, typescript       not run: the docs' TypeScript blocks are API signatures
//                        (declarations with elided bodies), reported as skipped
//   anything else        (sh, diagrams, no language) not run
// A marker on the line right before a fence changes that, several joined by ';':
//   <!-- example: no-run (why) -->   not run (the reason is required and reported)
//   <!-- example: node>=24 -->       skipped on older Node lines (`using`, `await using`)
//   <!-- example: flags --expose-gc -->   node flags for the program
//   <!-- example: fork-flags -->     the flags fork() needs on the running Node (forkFlags():
//                                    --single-threaded, and --minor-ms on Node 26)
//   <!-- example: file worker.js --> not run: written next to the next program block
//                                    of the same page, under that name (a Process
//                                    target, a module the program loads)
// A marker that is not understood, or a file block with no program after it, fails.
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forkFlags } from '../dist/index.js';

const ROOT = path.join(__dirname, '..');
const PAGES = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const RUN_MS = 20_000; // per program; the slowest takes about 2 s
const PROGRAM_EXT: Record<string, string> = { js: '.cjs', javascript: '.cjs', cjs: '.cjs', mjs: '.mjs' };
const SIGNATURES = new Set(['ts', 'typescript']);
const MARKER = /^\s*<!--\s*example:(.*?)-->\s*$/;

interface Marks {
  noRun?: string;
  minNode?: number;
  flags: string[];
  file?: string;
}

interface Block {
  page: string;
  line: number; // of the opening fence, 1-based
  lang: string;
  code: string;
  marks: Marks;
}

interface Program extends Block {
  files: Block[];
}

function parseMarks(text: string, where: string, errors: string[]): Marks {
  const marks: Marks = { flags: [] };
  for (const item of text.split(';').map((s) => s.trim()).filter(Boolean)) {
    let m: RegExpMatchArray | null;
    if ((m = /^no-run \((.+)\)$/.exec(item))) marks.noRun = m[1];
    else if ((m = /^node>=(\d+)$/.exec(item))) marks.minNode = Number(m[1]);
    else if ((m = /^flags (.+)$/.exec(item))) marks.flags.push(...m[1].split(/\s+/));
    else if (item === 'fork-flags') marks.flags.push(...forkFlags());
    else if ((m = /^file ([\w.-]+)$/.exec(item))) marks.file = m[1];
    else errors.push(`${where}: marker '${item}' not understood (no-run (why), node>=N, flags ..., fork-flags, file NAME)`);
  }
  return marks;
}

/** The fenced blocks of a page, each with the marker on the line before it. */
function blocksOf(page: string, errors: string[]): Block[] {
  const lines = fs.readFileSync(path.join(ROOT, page), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const marker = MARKER.exec(lines[i]);
    if (marker && !/^\s*(```|~~~)/.test(lines[i + 1] ?? '')) errors.push(`${page}:${i + 1}: an example marker not right before a code fence`);
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i].trim().startsWith(fence) && lines[i].trim().replace(/[`~]/g, '') === ''); i++) {
      body.push(lines[i].slice(Math.min(open[1].length, lines[i].length - lines[i].trimStart().length)));
    }
    const prev = start > 0 ? MARKER.exec(lines[start - 1]) : null;
    out.push({
      page,
      line: start + 1,
      lang: open[3].toLowerCase(),
      code: `${body.join('\n')}\n`,
      marks: prev ? parseMarks(prev[1], `${page}:${start}`, errors) : { flags: [] },
    });
  }
  return out;
}

const errors: string[] = [];
const programs: Program[] = [];
const signatures: Block[] = [];
for (const page of PAGES) {
  let files: Block[] = [];
  for (const b of blocksOf(page, errors)) {
    if (b.marks.file) files.push(b);
    else if (PROGRAM_EXT[b.lang]) {
      programs.push({ ...b, files });
      files = [];
    } else if (SIGNATURES.has(b.lang) && !b.marks.noRun) signatures.push(b);
  }
  for (const f of files) errors.push(`${page}:${f.line}: file block '${f.marks.file}' has no program block after it`);
}

/** The environment of a user's shell: none of tap's hooks or settings. */
function userEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k === 'NODE_OPTIONS' || /^(TAP|_TAPJS_|TS_NODE_|NODE_V8_COVERAGE$)/.test(k)) continue;
    env[k] = v;
  }
  return env;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

async function run(p: Program): Promise<Run> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-doc-'));
  try {
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'forksafe'), 'dir');
    for (const f of p.files) fs.writeFileSync(path.join(dir, f.marks.file as string), f.code);
    const main = path.join(dir, `example${PROGRAM_EXT[p.lang]}`);
    fs.writeFileSync(main, p.code);
    // Through env(1) with the environment as arguments: tap's process tracking
    // puts its --import hooks back into the environment of every process this
    // test spawns, and a user's program has none of them.
    const env = Object.entries(userEnv()).map(([k, v]) => `${k}=${v}`);
    const child = child_process.spawn('env', ['-i', ...env, process.execPath, ...p.marks.flags, main], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: whatever it starts is killed with it
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const killGroup = (): void => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // the group is gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, RUN_MS);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('close', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    killGroup(); // anything it left behind
    return { code, signal, stdout, stderr, timedOut };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

t.test('the pages parse: every marker understood, every file block followed by a program', async (t) => {
  t.same(errors, [], 'no marker errors');
  t.ok(programs.filter((p) => p.page === 'README.md').length >= 10, 'README.md has its examples', { count: programs.length });
});

for (const p of programs) {
  const name = `${p.page}:${p.line} (${p.lang}${p.files.length ? ` + ${p.files.map((f) => f.marks.file).join(', ')}` : ''})`;
  const skip = p.marks.noRun ? `not run: ${p.marks.noRun}`
    : p.marks.minNode && NODE_MAJOR < p.marks.minNode ? `needs Node ${p.marks.minNode}+, this is ${process.version}`
      : false;
  t.test(name, { skip }, async (t) => {
    const r = await run(p);
    const diag = { stdout: r.stdout, stderr: r.stderr, flags: p.marks.flags };
    t.notOk(r.timedOut, `finished within ${RUN_MS} ms`, diag);
    t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, 'exits 0', diag);
    t.equal(r.stderr, '', 'nothing on stderr', diag);
  });
}

for (const b of signatures) {
  t.test(`${b.page}:${b.line} (${b.lang})`, { skip: 'TypeScript blocks of the docs are API signatures, not programs' }, async () => {});
}
