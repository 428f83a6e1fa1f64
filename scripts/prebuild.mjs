#!/usr/bin/env node
// Builds the N-API prebuilds that ship in the package:
//   prebuilds/linux-x64/forksafe.napi.glibc.node
//   prebuilds/linux-arm64/forksafe.napi.glibc.node
// Usage: node scripts/prebuild.mjs [x64|arm64|all]   (default all)
//
// Each one is built by prebuildify (--napi --strip --tag-libc=glibc) with
// node-gyp, in a temporary copy of the sources: the checkout's build/ (which
// tests and node-gyp-build load first) is never touched, so it stays the host
// build. The architecture that is not the host's is cross-compiled with
// Debian's <triple>-g++ (apt-get install g++-aarch64-linux-gnu on x86-64).
// Headers: $npm_config_nodedir, else the running Node's own include/node, else
// /usr/include/node; only if none exists does node-gyp download them. The
// N-API headers are the same for every architecture.
//
// Names: node-gyp-build 4.8.4 takes prebuilds/<platform>-<arch>/ and, among
// the files there, any whose tags all match: "napi" matches every Node, and
// "glibc" only where its libc is glibc (it reports musl when /etc/alpine-release
// exists, or LIBC=musl), so Alpine builds from source instead of loading a
// glibc binary. The first tag (the package name) is not a tag it knows.
//
// Every binary is checked before it is put in prebuilds/, and the script fails
// loudly otherwise: the ELF machine is the target's, the file is stripped, the
// highest GLIBC_ symbol version it needs is at most the floor below, it needs
// no GLIBCXX_/CXXABI_ version and no libstdc++.so (libstdc++ is linked in; see
// native/core/glibc_compat_linux.cc), and a host-architecture build loads in
// this Node. It then prints the size, the versions and DT_NEEDED.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync,
  statSync, symlinkSync, unlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { arch as hostArch, availableParallelism, platform, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

// The glibc every prebuild must run on: RHEL 8 / Debian 10. Node 22+'s own
// linux-x64 and linux-arm64 binaries need 2.28 too.
const GLIBC_FLOOR = '2.28';

const TARGETS = {
  x64: { triple: 'x86_64-linux-gnu', machine: 62, machineName: 'x86-64', apt: 'g++-x86-64-linux-gnu' },
  arm64: { triple: 'aarch64-linux-gnu', machine: 183, machineName: 'AArch64', apt: 'g++-aarch64-linux-gnu' },
};

// Thrown for every failure, so the temporary directories are removed first.
class PrebuildError extends Error {}
function fail(message) {
  throw new PrebuildError(message);
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (res.error) return { ok: false, status: null, stdout: '', stderr: String(res.error.message) };
  return { ok: res.status === 0, status: res.status, stdout: res.stdout ?? '', stderr: res.stderr ?? '' };
}

function have(cmd) {
  return run(cmd, ['--version']).ok;
}

// "2.2.5" < "2.28": compares dotted versions numerically.
function cmpVersion(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

function highest(versions) {
  return [...versions].sort(cmpVersion).pop() ?? null;
}

// Which tools build for `arch` on this host: the plain ones for the host's own
// architecture (honouring $CXX etc.), the <triple>- ones otherwise.
function toolchain(arch) {
  const t = TARGETS[arch];
  const native = hostArch() === arch;
  const tools = native
    ? { cc: process.env.CC || 'gcc', cxx: process.env.CXX || 'g++', objdump: 'objdump', strip: process.env.STRIP || 'strip' }
    : { cc: `${t.triple}-gcc`, cxx: `${t.triple}-g++`, objdump: `${t.triple}-objdump`, strip: `${t.triple}-strip` };
  const firstWord = (s) => s.trim().split(/\s+/).pop(); // "ccache g++" -> g++
  for (const [role, cmd] of Object.entries(tools)) {
    if (have(firstWord(cmd))) continue;
    if (!native) {
      fail(`cross-compiling for linux-${arch} needs ${cmd} (${role}), which is not installed: ` +
        `apt-get install ${t.apt}`);
    }
    fail(`building for linux-${arch} needs ${cmd} (${role}), which is not installed: ` +
      (role === 'cxx' || role === 'cc' ? 'apt-get install g++' : 'apt-get install binutils'));
  }
  return { ...tools, native };
}

// Node headers without a download when possible (see the top of the file).
function nodedir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const own = join(dirname(process.execPath), '..');
  if (existsSync(join(own, 'include', 'node', 'node_api.h'))) return own;
  if (existsSync('/usr/include/node/node_api.h')) return '/usr';
  return null;
}

// The sources prebuildify needs, in a directory of their own (node_modules is
// linked: binding.gyp asks node-addon-api for its include dir).
function stage() {
  const dir = mkdtempSync(join(tmpdir(), 'forksafe-prebuild-'));
  cpSync(join(root, 'native'), join(dir, 'native'), { recursive: true });
  for (const f of ['binding.gyp', 'package.json']) copyFileSync(join(root, f), join(dir, f));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

function build(arch, tools, dir) {
  const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
  const nodeGyp = join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
  const env = {
    ...process.env,
    // node-gyp's Makefile, and binding.gyp's questions to the compiler, use these.
    CC: tools.cc,
    CXX: tools.cxx,
    LINK: tools.cxx,
    JOBS: String(availableParallelism()),
    // node, for binding.gyp's `node -p` and node-gyp's #!/usr/bin/env node.
    PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
    PREBUILD_NODE_GYP: nodeGyp,
  };
  const headers = nodedir();
  if (headers) env.npm_config_nodedir = headers;
  if (tools.native) delete env.npm_config_arch; // node-gyp would take it over --arch
  const args = [
    prebuildify, '--napi', '--strip', `--strip-bin=${tools.strip}`, '--tag-libc=glibc',
    `--arch=${arch}`, '--platform=linux', `--target=${process.versions.node}`, `--cwd=${dir}`,
  ];
  console.log(`prebuild: linux-${arch}: ${tools.cxx}, Node headers from ${headers ?? 'a download'}`);
  const res = spawnSync(process.execPath, args, { cwd: dir, env, stdio: 'inherit' });
  if (res.status !== 0) fail(`building linux-${arch} failed (prebuildify exited with ${res.status ?? res.signal})`);
  const out = join(dir, 'prebuilds', `linux-${arch}`);
  const files = existsSync(out) ? readdirSync(out).filter((f) => f.endsWith('.node')) : [];
  if (files.length !== 1) fail(`expected one .node in ${out}, found ${files.length}`);
  return join(out, files[0]);
}

// The checks described at the top; returns what is printed.
function check(arch, tools, file) {
  const t = TARGETS[arch];
  const problems = [];
  const head = readFileSync(file).subarray(0, 20);
  const isElf = head.readUInt32BE(0) === 0x7f454c46;
  const machine = isElf ? head.readUInt16LE(18) : -1;
  if (!isElf || head[4] !== 2 || head[5] !== 1) problems.push('not a 64-bit little-endian ELF file');
  else if (machine !== t.machine) problems.push(`ELF machine is ${machine}, not ${t.machine} (${t.machineName})`);

  const dyn = run(tools.objdump, ['-T', file]);
  const priv = run(tools.objdump, ['-p', file]);
  const syms = run(tools.objdump, ['-t', file]);
  if (!dyn.ok || !priv.ok || !syms.ok) fail(`${tools.objdump} failed on ${file}: ${dyn.stderr}${priv.stderr}`);

  const versions = { GLIBC: new Set(), GLIBCXX: new Set(), CXXABI: new Set(), GCC: new Set() };
  const newest = new Map(); // GLIBC version -> symbols needing it, for the message
  for (const m of dyn.stdout.matchAll(/\((GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)\)\s+(\S+)/g)) {
    versions[m[1]].add(m[2]);
    if (m[1] === 'GLIBC') newest.set(m[2], [...(newest.get(m[2]) ?? []), m[3]]);
  }
  const needed = [...priv.stdout.matchAll(/^\s*NEEDED\s+(\S+)/gm)].map((m) => m[1]);
  const glibc = highest(versions.GLIBC);
  if (glibc && cmpVersion(glibc, GLIBC_FLOOR) > 0) {
    const over = [...newest].filter(([v]) => cmpVersion(v, GLIBC_FLOOR) > 0)
      .map(([v, s]) => `GLIBC_${v}: ${s.join(', ')}`);
    problems.push(`needs glibc newer than ${GLIBC_FLOOR}: ${over.join('; ')}`);
  }
  if (versions.GLIBCXX.size || versions.CXXABI.size) {
    problems.push(`needs the system libstdc++ (GLIBCXX_${highest(versions.GLIBCXX) ?? '-'}, ` +
      `CXXABI_${highest(versions.CXXABI) ?? '-'}): it should be linked in statically ` +
      '(is libstdc++.a installed? RHEL/Fedora: libstdc++-static)');
  }
  if (needed.some((n) => n.startsWith('libstdc++'))) problems.push('DT_NEEDED has libstdc++.so');
  if (!/no symbols/.test(syms.stdout)) problems.push('not stripped (it has a symbol table)');

  if (tools.native && !problems.length) {
    // It must load here: dlopen resolves every symbol version it needs.
    const res = run(process.execPath, ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(file)})`]);
    if (!res.ok) problems.push(`does not load in Node ${process.version}: ${res.stderr.trim()}`);
  }
  if (problems.length) fail(`linux-${arch} (${file}):\n  - ${problems.join('\n  - ')}`);
  return {
    size: statSync(file).size,
    glibc,
    glibcxx: highest(versions.GLIBCXX),
    gcc: highest(versions.GCC),
    needed,
  };
}

function install(arch, file) {
  const dest = join(root, 'prebuilds', `linux-${arch}`);
  mkdirSync(dest, { recursive: true });
  for (const old of readdirSync(dest)) if (old.endsWith('.node')) unlinkSync(join(dest, old));
  const name = file.split('/').pop();
  copyFileSync(file, join(dest, name));
  return join('prebuilds', `linux-${arch}`, name);
}

function main() {
  const which = process.argv[2] ?? 'all';
  if (process.argv.length > 3 || !['x64', 'arm64', 'all'].includes(which)) {
    fail('usage: node scripts/prebuild.mjs [x64|arm64|all]');
  }
  if (platform() !== 'linux') fail(`prebuilds are made on Linux (this is ${platform()})`);
  const arches = which === 'all' ? ['x64', 'arm64'] : [which];

  // Tools first, so a missing cross compiler fails before anything is built.
  const tools = Object.fromEntries(arches.map((a) => [a, toolchain(a)]));
  const report = [];
  for (const arch of arches) {
    const dir = stage();
    try {
      const file = build(arch, tools[arch], dir);
      const info = check(arch, tools[arch], file);
      report.push({ arch, path: install(arch, file), ...info });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return report;
}

let report;
try {
  report = main();
} catch (err) {
  if (!(err instanceof PrebuildError)) throw err;
  console.error(`prebuild: ${err.message}`);
  process.exit(1);
}
for (const r of report) {
  console.log(
    `prebuild: ${r.path}: ${r.size} bytes (${(r.size / 1024).toFixed(0)} KiB), ` +
    `highest GLIBC_${r.glibc} (floor ${GLIBC_FLOOR}), GLIBCXX: ${r.glibcxx ? `GLIBCXX_${r.glibcxx}` : 'none'}` +
    ` (libstdc++ static), GCC_${r.gcc ?? '-'} (libgcc_s), NEEDED ${r.needed.join(' ')}`,
  );
}
