// A fork(main) child runs none of the code of fork()'s caller: no catch, no
// finally, no continuation of an awaiting caller, wherever fork() is called
// from (top level, an async function, a timer, an immediate, a microtask, a
// tick, an I/O callback, an ES module, inside main itself). Each scenario is a
// program of its own, run with forkFlags(); every statement of the caller
// writes a mark with its pid, and no mark may come from a child except main's.
// Also: what a child exits with when main returns something that is not a number.
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forkFlags } from '../dist/index.js';

const ROOT = path.join(__dirname, '..');
const DIST = path.join(ROOT, 'dist', 'index.js');
const DIST_MJS = path.join(ROOT, 'dist', 'index.mjs');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-caller-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const PRELUDE = `
const fs = require('node:fs');
const { fork } = require(${JSON.stringify(DIST)});
const MARKS = process.argv[2];
const mark = (m) => fs.appendFileSync(MARKS, JSON.stringify({ pid: process.pid, m }) + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const main5 = async () => { mark('main'); await sleep(20); await null; return 5; };
const report = (c) => c.exited.then((e) => mark('exit ' + c.pid + ' ' + JSON.stringify(e)));
`;

// Each body is the caller; `CALL` is where the scenario's caller code runs.
const CALLER = `
function caller(main = main5) {
  let c;
  try {
    c = fork(main);
    mark('after fork()');
    report(c);
  } catch (e) {
    mark('catch ' + e);
  } finally {
    mark('finally');
  }
  mark('after try');
  return c;
}
`;

interface Scenario {
  body: string;
  esm?: boolean;
  children: number; // how many children the scenario makes
  exits?: number[]; // the children's exit codes (default: all 5)
  parentMarks?: string[]; // marks the parent must have written (the caller ran normally there)
}

const scenarios: Record<string, Scenario> = {
  'top level, sync main, try/catch/finally': {
    body: `${CALLER} caller(() => { mark('main'); return 5; });`,
    children: 1, parentMarks: ['after fork()', 'finally', 'after try'],
  },
  'top level, async main, try/catch/finally': {
    body: `${CALLER} caller();`, children: 1, parentMarks: ['after fork()', 'finally', 'after try'],
  },
  "async caller with .catch(e => process.exit(1)) (the issue's case)": {
    body: `(async () => {
      const c = fork(main5);
      mark('after fork()');
      report(c);
      await c.exited;
      mark('awaited');
    })().catch((e) => { mark('caller catch ' + e); process.exit(1); });`,
    children: 1, parentMarks: ['after fork()', 'awaited'],
  },
  'try/finally removing a directory main needs': {
    body: `(async () => {
      const d = fs.mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'forksafe-fin-'));
      try {
        const c = fork(async () => { mark('main'); await sleep(100); return fs.existsSync(d) ? 5 : 6; });
        report(c);
        await c.exited;
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
        mark('finally');
      }
    })();`,
    children: 1, parentMarks: ['finally'],
  },
  'Promise.all around two fork() calls': {
    body: `(async () => {
      try {
        const cs = await Promise.all([1, 2].map(async () => { await null; return fork(main5); }));
        mark('after Promise.all');
        cs.forEach(report);
      } catch (e) {
        mark('catch ' + e);
      } finally {
        mark('finally');
      }
    })();`,
    children: 2, parentMarks: ['after Promise.all', 'finally'],
  },
  'from a timer callback': { body: `${CALLER} setTimeout(() => { caller(); mark('timer end'); }, 5);`, children: 1, parentMarks: ['finally', 'timer end'] },
  'from a setInterval callback (the interval does not fire in the child)': {
    body: `${CALLER} let n = 0; const iv = setInterval(() => {
      mark('interval ' + n);
      if (n++ === 0) caller(async () => { mark('main'); await sleep(60); return 5; });
      if (n === 3) clearInterval(iv);
    }, 10);`,
    children: 1, parentMarks: ['interval 0', 'interval 2', 'finally'],
  },
  'from a microtask (queueMicrotask)': { body: `${CALLER} queueMicrotask(() => { caller(); mark('microtask end'); });`, children: 1, parentMarks: ['finally', 'microtask end'] },
  'from a promise continuation after an await, in a timer': {
    body: `${CALLER} setTimeout(async () => { await null; caller(); await null; mark('continued'); }, 1);`,
    children: 1, parentMarks: ['finally', 'continued'],
  },
  'from process.nextTick': { body: `${CALLER} process.nextTick(() => { caller(); mark('tick end'); });`, children: 1, parentMarks: ['finally', 'tick end'] },
  'from the second immediate of a batch': {
    body: `${CALLER} setImmediate(() => mark('first immediate'));
      setImmediate(() => { caller(); mark('immediate end'); });`,
    children: 1, parentMarks: ['first immediate', 'finally', 'immediate end'],
  },
  'from an I/O callback': { body: `${CALLER} fs.readFile(__filename, () => { caller(); mark('io end'); });`, children: 1, parentMarks: ['finally', 'io end'] },
  'with async_hooks before/after hooks enabled, from a timer': {
    body: `require('node:async_hooks').createHook({ before() {}, after() {} }).enable();
      ${CALLER} setTimeout(() => { caller(); }, 1);`,
    children: 1, parentMarks: ['finally'],
  },
  'main forks a grandchild inside its own try/catch/finally': {
    body: `const c = fork(async () => {
      mark('main');
      try {
        const g = fork(main5);
        mark('main after fork()');
        const e = await g.exited;
        mark('grandchild ' + g.pid + ' ' + JSON.stringify(e));
        return e.code;
      } catch (e) {
        mark('main catch ' + e);
      } finally {
        mark('main finally');
      }
    });
    report(c);`,
    children: 1,
  },
  'an ES module: top-level fork() inside try/finally, then top-level await': {
    esm: true,
    body: `try {
      const c = fork(main5);
      mark('after fork()');
      report(c);
      await c.exited;
      mark('awaited');
    } finally {
      mark('finally');
    }`,
    children: 1, parentMarks: ['after fork()', 'awaited', 'finally'],
  },
  'exit codes: a non-number result exits with process.exitCode, else 0': {
    body: `report(fork(() => { mark('main'); process.exitCode = 7; return 'not a number'; }));
      report(fork(async () => { mark('main'); await sleep(5); process.exitCode = 9; return { x: 1 }; }));
      report(fork(async () => { mark('main'); return undefined; }));
      report(fork(() => { mark('main'); process.exitCode = 3; return 4; }));`,
    children: 4, exits: [7, 9, 0, 4],
  },
};

function program(s: Scenario): string {
  if (!s.esm) return `${PRELUDE}\n${s.body}\n`;
  const prelude = PRELUDE
    .replace(/const fs = require\('node:fs'\);/, "import * as fs from 'node:fs';")
    .replace(/const \{ fork \} = require\((.*)\);/, `import { fork } from ${JSON.stringify(DIST_MJS)};`);
  return `${prelude}\n${s.body}\n`;
}

interface Mark { pid: number; m: string }

function run(name: string, s: Scenario): Promise<{ code: number | null; signal: string | null; stderr: string; marks: Mark[] }> {
  const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.${s.esm ? 'mjs' : 'cjs'}`);
  const marks = `${file}.marks`;
  fs.writeFileSync(file, program(s));
  return new Promise((resolve) => {
    // Through env -i, as a user's program starts: tap's process tracker puts
    // its --import hooks back into NODE_OPTIONS otherwise.
    const c = child_process.spawn('env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, ...forkFlags(), file, marks], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      let lines: Mark[] = [];
      try {
        lines = fs.readFileSync(marks, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Mark);
      } catch {
        /* none */
      }
      resolve({ code, signal, stderr, marks: lines });
    });
  });
}

t.jobs = 2;
for (const [name, s] of Object.entries(scenarios)) {
  t.test(name, async (t) => {
    const r = await run(name, s);
    t.equal(r.code, 0, 'the program exited 0', { stderr: r.stderr });
    t.equal(r.signal, null, 'no signal');
    const parentPids = new Set(r.marks.filter((m) => m.m.startsWith('exit ')).map((m) => m.pid));
    const exits = r.marks.filter((m) => m.m.startsWith('exit ')).map((m) => {
      const [, pid, json] = /^exit (\d+) (.*)$/.exec(m.m)!;
      return { pid: Number(pid), exit: JSON.parse(json) as { code: number | null; signal: string | null } };
    });
    t.equal(exits.length, s.children, `${s.children} child exit(s) reported`, { marks: r.marks });
    const want = s.exits ?? exits.map(() => 5);
    exits.sort((a, b) => a.pid - b.pid); // the order they were forked in
    t.same(exits.map((e) => e.exit), want.map((code) => ({ code, signal: null })), `the children exited with ${want.join(', ')}`, { stderr: r.stderr });
    // Every process that is not the program itself may write only what main writes.
    const program = r.marks.find((m) => parentPids.has(m.pid))?.pid ?? -1;
    const others = r.marks.filter((m) => m.pid !== program);
    const grand = new Set(r.marks.filter((m) => m.m.startsWith('grandchild ')).map((m) => Number(m.m.split(' ')[1])));
    for (const m of others) {
      if (grand.has(m.pid)) {
        t.equal(m.m, 'main', `grandchild ${m.pid} ran only main: '${m.m}'`);
      } else if (s.children === 1 && grand.size > 0) {
        // The child is the caller of the grandchild's fork(): its own code goes on there.
        t.ok(m.m.startsWith('main') || m.m.startsWith('grandchild') || m.m.startsWith('exit'), `the child ran main's code: '${m.m}'`);
      } else {
        t.equal(m.m, 'main', `child ${m.pid} ran only main: '${m.m}'`);
      }
    }
    const childMains = others.filter((m) => m.m === 'main' && !grand.has(m.pid)).length;
    t.equal(childMains, s.children, 'main ran once in each child');
    for (const pm of s.parentMarks ?? []) {
      t.ok(r.marks.some((m) => m.pid === program && m.m === pm), `the parent's caller went on: '${pm}'`);
    }
    if (grand.size > 0) {
      const g = r.marks.find((m) => m.m.startsWith('grandchild '))!;
      t.match(g.m, /\{"code":5,"signal":null\}$/, 'the grandchild exited 5');
      t.ok(r.marks.some((m) => m.pid === g.pid && m.m === 'main'), 'the grandchild ran main');
      t.notOk(r.marks.some((m) => grand.has(m.pid) && /catch|finally|after fork/.test(m.m)), "no catch/finally of the child's main ran in the grandchild");
    }
  });
}

t.test("Process targets (spawn, forkserver): a non-number result exits with process.exitCode, else 0", async (t) => {
  const { getContext, stopForkserver } = await import('../dist/index.js');
  const target = path.join(dir, 'exitcode-target.cjs');
  fs.writeFileSync(target, `
exports.setsCode = () => { process.exitCode = 7; return 'not a number'; };
exports.setsCodeAsync = async () => { await null; process.exitCode = 9; return { x: 1 }; };
exports.nothing = () => undefined;
exports.number = () => { process.exitCode = 3; return 4; };
`);
  const cases: Array<[string, number]> = [['setsCode', 7], ['setsCodeAsync', 9], ['nothing', 0], ['number', 4]];
  for (const ctx of ['spawn', 'forkserver'] as const) {
    const P = getContext(ctx).Process;
    for (const [exp, code] of cases) {
      const p = new P({ target: { module: target, export: exp } }).start();
      t.same(await p.exited, { code, signal: null }, `${ctx}: ${exp} exits ${code}`);
    }
  }
  await stopForkserver();
});
