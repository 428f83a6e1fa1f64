// Prints bench/results.json (or the file named on the command line) as
// markdown tables, for docs/benchmarks.md:  node bench/markdown.mjs [file]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownTable } from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] ?? path.join(here, 'results.json');
const r = JSON.parse(fs.readFileSync(file, 'utf8'));
const e = r.env;

const out = [];
out.push(
  `Run of ${e.date.slice(0, 10)}${e.quick ? ' (BENCH_QUICK)' : ''}: node ${e.node} (V8 ${e.v8}), ${e.cpu}, nproc ${e.nproc}, ` +
    `${e.kernel}; python ${e.python ?? '—'}; ${e.cc ?? 'no cc'}` +
    `${e.busy_before != null ? `; CPUs ${Math.round(e.busy_before * 100)}% busy before the run` : ''}` +
    `${e.steal_during != null ? `, hypervisor steal ${(e.steal_during * 100).toFixed(1)}% during it` : ''}` +
    `${e.others_busy_during != null ? `, other processes ${(e.others_busy_during * 100).toFixed(0)}% of the CPUs during it` : ''}; took ${r.elapsed_s} s.`,
  '',
);
for (const s of r.sections) {
  out.push(`**${s.title}**`, '', markdownTable(s.headers, s.cells), '');
}
out.push('**Goals**', '');
for (const g of r.goals) {
  const mark = g.met === null ? '·' : g.met ? '✓' : '✗';
  out.push(`- ${mark} ${g.goal}: ${g.detail}`);
}
if (r.notes.length) {
  out.push('', '**Notes**', '');
  for (const n of r.notes) out.push(`- ${n}`);
}
console.log(out.join('\n'));
