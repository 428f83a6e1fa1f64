'use strict';
// The worker side of the pool: the target of every worker Process.
//   new Process({ target: { module: 'worker.js', export: 'serve' }, args: [mailbox, module, exportName] })
// forksafe attaches the mailbox (a SharedMemory) before serve() runs; serve()
// loads the user's task module, then runs one task at a time until told to stop.
const { pathToFileURL } = require('node:url');
const mb = require('./mailbox.js');

/** The task function: `exportName` of the module, or its default export. */
async function load(module, exportName) {
  let ns;
  try {
    ns = require(module); // CommonJS (and, on recent Node, ES modules without top-level await)
  } catch (e) {
    if (e.code !== 'ERR_REQUIRE_ESM' && e.code !== 'ERR_REQUIRE_ASYNC_MODULE') throw e;
    ns = await import(pathToFileURL(module).href);
  }
  const fn = exportName ? (ns[exportName] ?? ns.default?.[exportName]) : (typeof ns === 'function' ? ns : ns.default?.default ?? ns.default);
  if (typeof fn !== 'function') {
    throw new TypeError(`pool worker: ${module} has no ${exportName ? `function '${exportName}'` : 'default export function'}`);
  }
  return fn;
}

/** An error as plain data (a class does not survive v8.serialize; name, message, stack and code do). */
function describe(e) {
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack, code: e.code };
  return { name: 'Error', message: `non-Error thrown: ${String(e)}`, stack: undefined, code: undefined };
}

exports.serve = async function serve(mailbox, module, exportName) {
  const fn = await load(module, exportName); // a throw here: exit code 1, the pool reports it
  mb.setState(mailbox, mb.IDLE);
  for (;;) {
    // Wait for the parent: IDLE -> TASK or STOP.
    await mb.waitWhile(mailbox, mb.IDLE);
    if (mb.state(mailbox) === mb.STOP) break;
    const task = mb.readPayload(mailbox);
    let reply;
    try {
      reply = { ok: true, value: await fn(task) };
    } catch (e) {
      reply = { ok: false, error: describe(e) };
    }
    try {
      mb.writePayload(mailbox, reply);
    } catch (e) {
      // The value cannot be serialized, or is too big: report that instead.
      mb.writePayload(mailbox, { ok: false, error: describe(e) });
    }
    mb.setState(mailbox, mb.DONE);
    // The parent reads the reply and sets IDLE (or STOP) again.
    await mb.waitWhile(mailbox, mb.DONE);
    if (mb.state(mailbox) === mb.STOP) break;
  }
  mailbox.close();
  return 0;
};
