// Message encoding for queues and pipes. Bytes-like values and strings take a
// fast path (no serializer, one copy into the ring); anything else goes
// through v8.serialize() after the hand-off walk (core/handoff.ts) has put
// forksafe primitives' handles in their place, so that they arrive attached.
// A value that cannot be serialized throws here, in put()/send() itself.
import * as v8 from 'node:v8';
import { attach } from '../core/attach';
import { fromWire, toWire } from '../core/handoff';
import type { StartMethod } from '../core/layout';
import { CorruptError, notCloneable } from '../core/errors';

export const TAG = {
  BUFFER: 1, STRING: 2, ARRAYBUFFER: 3, UINT8: 4,
  // 5..15: other views, by VIEWS index
  V8: 20,
  SPILL: 0x100, // | the inner tag: the payload names a spill segment holding the message
} as const;

const VIEWS = [
  Int8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
] as const;

export interface Encoded {
  tag: number;
  len: number;
  /** Bytes to copy, or a string to write as UTF-8. */
  bytes: Uint8Array | null;
  str: string | null;
}

export function encode(v: unknown, method: StartMethod, where: string): Encoded {
  if (typeof v === 'string') {
    return { tag: TAG.STRING, len: Buffer.byteLength(v, 'utf8'), bytes: null, str: v };
  }
  if (v instanceof Uint8Array) {
    const tag = Buffer.isBuffer(v) ? TAG.BUFFER : v.constructor === Uint8Array ? TAG.UINT8 : 0;
    if (tag) return { tag, len: v.byteLength, bytes: v, str: null };
  }
  if (v instanceof ArrayBuffer) return { tag: TAG.ARRAYBUFFER, len: v.byteLength, bytes: new Uint8Array(v), str: null };
  if (ArrayBuffer.isView(v)) {
    const i = VIEWS.indexOf((v as object).constructor as (typeof VIEWS)[number]);
    if (i >= 0 && !(v.buffer instanceof SharedArrayBuffer)) {
      return { tag: 5 + i, len: v.byteLength, bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), str: null };
    }
  }
  const wire = toWire([v], method, where, new Set())[0];
  let bytes: Buffer;
  try {
    bytes = v8.serialize(wire);
  } catch (e) {
    throw notCloneable('item', v, e);
  }
  return { tag: TAG.V8, len: bytes.byteLength, bytes, str: null };
}

/** Writes an encoded message at byte `off` of `target` (a Buffer over the ring's memory). */
export function writeEncoded(e: Encoded, target: Buffer, off: number): void {
  if (e.str !== null) target.write(e.str, off, e.len, 'utf8');
  else if (e.bytes && e.len > 0) target.set(e.bytes, off);
}

/** Decodes a payload (a private copy: the result may keep it). */
export function decode(tag: number, bytes: Buffer): unknown {
  switch (tag) {
    case TAG.BUFFER:
      return bytes;
    case TAG.STRING:
      return bytes.toString('utf8');
    case TAG.ARRAYBUFFER:
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    case TAG.UINT8:
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    case TAG.V8: {
      let v: unknown;
      try {
        v = v8.deserialize(bytes);
      } catch (e) {
        throw new CorruptError(`a message does not deserialize: ${(e as Error).message}`);
      }
      return fromWire(v, attach);
    }
    default: {
      const i = tag - 5;
      if (i >= 0 && i < VIEWS.length) {
        const C = VIEWS[i];
        const per = C === DataView ? 1 : (C as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
        if (bytes.byteLength % per !== 0) throw new CorruptError(`a ${C.name} of ${bytes.byteLength} bytes`);
        // A fresh, aligned buffer (a Buffer from the pool may sit at any offset).
        const ab = bytes.buffer.byteLength === bytes.byteLength && bytes.byteOffset === 0
          ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        return C === DataView ? new DataView(ab) : new (C as unknown as new (b: ArrayBufferLike) => unknown)(ab);
      }
      throw new CorruptError(`unknown message tag ${tag}`);
    }
  }
}

/** Whether a tag (without the spill bit) is one decode() knows. */
export function knownTag(tag: number): boolean {
  return tag === TAG.BUFFER || tag === TAG.STRING || tag === TAG.ARRAYBUFFER || tag === TAG.UINT8 || tag === TAG.V8 ||
    (tag >= 5 && tag < 5 + VIEWS.length);
}
