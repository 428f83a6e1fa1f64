// The Pool's messages on a worker's Pipe, as one Buffer each (the pipe's
// fast path: no serializer for the frame): numbers and strings, the common
// task arguments and results, are written as they are; anything else goes
// through v8.serialize() after the hand-off walk (primitives arrive
// attached). docs/pool.md, "The task channel".
//
//   task:   u32 id | u8 nameLen | name (utf8) | values
//   result: u32 id | u8 kind (1 ok, 0 error, 2 ready, 3 init failed, 4 exit) | f64 rss | values
//   values: u8 form, then 'n' count x f64 | 's' u32 len + utf8 (one string) | 'v' v8.serialize(array)
import * as v8 from 'node:v8';
import { attach } from '../core/attach';
import { CorruptError, notCloneable } from '../core/errors';
import { fromWire, toWire } from '../core/handoff';
import type { StartMethod } from '../core/layout';

const N = 0x6e, S = 0x73, V = 0x76;

function valuesSize(vals: unknown[]): { form: number; bytes: Buffer | null; size: number } {
  if (vals.every((x) => typeof x === 'number')) return { form: N, bytes: null, size: 1 + 4 + 8 * vals.length };
  if (vals.length === 1 && typeof vals[0] === 'string') {
    const len = Buffer.byteLength(vals[0] as string, 'utf8');
    return { form: S, bytes: null, size: 1 + 4 + len };
  }
  return { form: V, bytes: null, size: 0 };
}

function encodeValues(vals: unknown[], method: StartMethod, where: string, head: number): { buf: Buffer; off: number } {
  const v = valuesSize(vals);
  if (v.form === V) {
    const wire = toWire([vals], method, where, new Set())[0]; // ContextError for a primitive of another context
    let bytes: Buffer;
    try {
      bytes = v8.serialize(wire);
    } catch (e) {
      throw notCloneable(where, vals, e);
    }
    const buf = Buffer.allocUnsafe(head + 1 + bytes.length);
    buf[head] = V;
    bytes.copy(buf, head + 1);
    return { buf, off: head };
  }
  const buf = Buffer.allocUnsafe(head + v.size);
  buf[head] = v.form;
  if (v.form === N) {
    buf.writeUInt32LE(vals.length, head + 1);
    for (let i = 0; i < vals.length; i++) buf.writeDoubleLE(vals[i] as number, head + 5 + 8 * i);
  } else {
    const len = v.size - 5;
    buf.writeUInt32LE(len, head + 1);
    buf.write(vals[0] as string, head + 5, len, 'utf8');
  }
  return { buf, off: head };
}

function decodeValues(buf: Buffer, at: number): unknown[] {
  const form = buf[at];
  if (form === N) {
    const n = buf.readUInt32LE(at + 1);
    if (at + 5 + 8 * n > buf.length) throw new CorruptError('pool message: numbers');
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = buf.readDoubleLE(at + 5 + 8 * i);
    return out;
  }
  if (form === S) {
    const len = buf.readUInt32LE(at + 1);
    if (at + 5 + len > buf.length) throw new CorruptError('pool message: string');
    return [buf.toString('utf8', at + 5, at + 5 + len)];
  }
  if (form === V) {
    let v: unknown;
    try {
      v = v8.deserialize(buf.subarray(at + 1));
    } catch (e) {
      throw new CorruptError(`pool message: ${(e as Error).message}`);
    }
    const out = fromWire(v, attach);
    if (!Array.isArray(out)) throw new CorruptError('pool message: not an array');
    return out;
  }
  throw new CorruptError(`pool message: form ${form}`);
}

export function encodeTask(id: number, name: string, args: unknown[], method: StartMethod): Buffer {
  const nameLen = Buffer.byteLength(name, 'utf8');
  if (nameLen > 255) throw new RangeError('a task function name longer than 255 bytes');
  const head = 5 + nameLen;
  const { buf } = encodeValues(args, method, 'a task argument', head);
  buf.writeUInt32LE(id, 0);
  buf[4] = nameLen;
  buf.write(name, 5, nameLen, 'utf8');
  return buf;
}

export function decodeTask(buf: Buffer): { id: number; name: string; args: unknown[] } {
  if (buf.length < 6) throw new CorruptError('pool message: short task');
  const id = buf.readUInt32LE(0);
  const nameLen = buf[4];
  const name = buf.toString('utf8', 5, 5 + nameLen);
  return { id, name, args: decodeValues(buf, 5 + nameLen) };
}

export const KIND = { ERROR: 0, OK: 1, READY: 2, INITFAIL: 3, EXIT: 4 } as const;

export function encodeResult(id: number, kind: number, values: unknown[], rss: number, method: StartMethod): Buffer {
  const { buf } = encodeValues(values, method, 'a task result', 13);
  buf.writeUInt32LE(id, 0);
  buf[4] = kind;
  buf.writeDoubleLE(rss, 5);
  return buf;
}

export function decodeResult(buf: Buffer): { id: number; kind: number; rss: number; values: unknown[] } {
  if (buf.length < 14) throw new CorruptError('pool message: short result');
  return { id: buf.readUInt32LE(0), kind: buf[4], rss: buf.readDoubleLE(5), values: decodeValues(buf, 13) };
}
