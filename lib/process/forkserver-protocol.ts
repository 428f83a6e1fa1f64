// What the parent and its forkserver share: the status table's layout and the
// frames on their socketpair. See docs/forkserver.md.
import * as v8 from 'node:v8';
import { dropFlags } from '../core/util';

/** Int32 word indexes and states of the status table (a 'spawn' SharedMemory). */
export const FS = {
  READY: 0, // 0 booting, 1 ready, 2 preload failed (text at ERROR_OFFSET)
  READY_PID: 1,
  READY_BOOTING: 0,
  READY_OK: 1,
  READY_FAILED: 2,
  ERROR_OFFSET: 64,
  ERROR_BYTES: 4032,
  ENTRIES_WORD: 1024, // entries start at byte 4096
  ENTRY_WORDS: 4,
  ENTRIES: 4096, // concurrent starts per parent thread
  // entry words
  E_STATE: 0,
  E_PID: 1,
  E_CODE: 2,
  E_SIGNAL: 3,
  // entry states
  FREE: 0,
  REQUESTED: 1,
  STARTED: 2,
  EXITED: 3,
  FAILED: 4,
} as const;

export const STATUS_BYTES = FS.ENTRIES_WORD * 4 + FS.ENTRIES * FS.ENTRY_WORDS * 4;

export function entryWord(id: number): number {
  return FS.ENTRIES_WORD + id * FS.ENTRY_WORDS;
}

export interface StartRequest {
  t: 'start';
  id: number;
  module: string;
  export: string | null;
  args: Buffer; // v8.serialize(toWire(args))
  name: string | null;
  env: NodeJS.ProcessEnv | null;
}

export interface KillRequest {
  t: 'kill';
  id: number;
  signal: number;
}

export type FsRequest = StartRequest | KillRequest;

export interface ExitMessage {
  t: 'exit';
  id: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Forkserver -> parent frames (a failed start is reported in the status table alone). */
export type FsMessage = ExitMessage;

const MAX_FRAME = 1 << 30;

export function encodeFrame(msg: unknown): Buffer {
  const body = v8.serialize(msg);
  if (body.length > MAX_FRAME) {
    throw new RangeError(`forksafe: a request of ${body.length} bytes is more than the forkserver takes (${MAX_FRAME}); ` +
      'pass big data in a SharedMemory');
  }
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into frames; each byte is copied once (chunks are joined only when a frame is whole). */
export class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0; // bytes in chunks
  private need = -1; // body length of the frame being read, -1 until its header is in

  push(chunk: Buffer): unknown[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.have < 4) break;
        const n = this.take(4).readUInt32LE(0);
        if (n > MAX_FRAME) throw new Error(`forksafe forkserver: corrupt frame (${n} bytes)`);
        this.need = n;
      }
      if (this.have < this.need) break;
      out.push(v8.deserialize(this.take(this.need)));
      this.need = -1;
    }
    return out;
  }

  /** The next n bytes (n <= have). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0];
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.have -= n;
    return out;
  }
}


// Flags that must not reach the forkserver: they would run the parent's code
// again, fight over a debugger port, or (module hooks registered with
// --import/--loader) start the loader's hooks thread, and a forkserver must be
// single-threaded to fork.
const DROP = /^--(inspect|inspect-brk|inspect-port|debug-port|eval|print|input-type|test|watch|import|loader|experimental-loader)(=|$)|^-[ep]$/;
const TAKES_VALUE = /^(-e|-p|--eval|--print|--import|--loader|--experimental-loader|--inspect-port|--debug-port|--input-type)$/;

export function defaultExecArgv(argv: string[] = process.execArgv): string[] {
  return dropFlags(argv, DROP, TAKES_VALUE).filter((a) => a !== '--single-threaded');
}

/** NODE_OPTIONS without module hooks (--import/--loader would start the hooks thread in the forkserver). */
export function sanitizeNodeOptions(v: string | undefined): string | undefined {
  if (!v) return v;
  const toks = v.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
  return dropFlags(toks, DROP, TAKES_VALUE, (tok) => tok.replace(/"/g, '')).join(' ');
}
