'use strict';
// One worker's mailbox: a SharedMemory region shared by the pool (in the parent)
// and one worker process. Both sides use this file, so the layout is written once.
//
//   Int32 word 0: state  (who may write it: see the transitions below)
//   Int32 word 1: length of the payload in bytes
//   bytes 8..   : payload, v8.serialize() of a task (parent -> worker)
//                 or of a reply { ok, value | error } (worker -> parent)
//
// Transitions (each side writes the payload first, then the state, then notifies):
//   STARTING -> IDLE   worker: the task module is loaded, ready to serve
//   IDLE     -> TASK   parent: a task is in the payload
//   TASK     -> DONE   worker: the reply is in the payload
//   DONE     -> IDLE   parent: the reply has been read
//   IDLE     -> STOP   parent: pool.close(); the worker returns (exit code 0)
const v8 = require('node:v8');

const STARTING = 0;
const IDLE = 1;
const TASK = 2;
const DONE = 3;
const STOP = 4;

const STATE = 0; // word index
const LENGTH = 1; // word index
const HEADER = 8; // bytes

function words(mailbox) {
  return new Int32Array(mailbox.buffer, 0, 2);
}

function state(mailbox) {
  return Atomics.load(words(mailbox), STATE);
}

/** Sets the state word and wakes the other side (whichever process waits on it). */
function setState(mailbox, value) {
  Atomics.store(words(mailbox), STATE, value);
  mailbox.notify(STATE);
}

/** Copies serialized bytes into the payload area; RangeError if they do not fit. */
function writeBytes(mailbox, bytes) {
  const room = mailbox.size - HEADER;
  if (bytes.length > room) {
    throw new RangeError(`a message of ${bytes.length} bytes does not fit in the mailbox (${room} bytes: raise mailboxBytes)`);
  }
  new Uint8Array(mailbox.buffer, HEADER, bytes.length).set(bytes);
  Atomics.store(words(mailbox), LENGTH, bytes.length);
}

/** Serializes `value` (v8.serialize: structured-clone data) into the payload area. */
function writePayload(mailbox, value) {
  writeBytes(mailbox, v8.serialize(value));
}

function readPayload(mailbox) {
  const n = Atomics.load(words(mailbox), LENGTH);
  // Copy out first: deserialize must not read memory the other side may reuse.
  return v8.deserialize(Buffer.from(new Uint8Array(mailbox.buffer, HEADER, n)));
}

/**
 * Resolves once the state word is no longer `value` (never blocks the event loop).
 * `signal` aborts the wait (the promise then rejects with the signal's reason).
 */
async function waitWhile(mailbox, value, signal) {
  while (state(mailbox) === value) await mailbox.waitAsync(STATE, value, { signal });
}

module.exports = {
  STARTING, IDLE, TASK, DONE, STOP, HEADER,
  state, setState, writeBytes, writePayload, readPayload, waitWhile,
};
