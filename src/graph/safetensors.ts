/**
 * The safetensors format (Hugging Face), read and written here (the npm package is
 * browser-only): 8-byte little-endian header length N, N bytes of JSON header
 * ({ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { k: string } }),
 * then the raw little-endian tensor bytes, offsets relative to the end of the header.
 *
 * F16 and BF16 (common in pretrained checkpoints) are read as float32.
 */
import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
  mkdirSync,
} from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { type DType, type TypedArray, allocate, bytesPerElement } from './dtype.js';
import type { HostTensor } from './runtime.js';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Safetensors dtype names this reader knows, with their element sizes. */
const FILE_DTYPES: Record<string, { size: number; as: DType }> = {
  F32: { size: 4, as: 'float32' },
  F64: { size: 8, as: 'float64' },
  I64: { size: 8, as: 'int64' },
  I32: { size: 4, as: 'int32' },
  U8: { size: 1, as: 'uint8' },
  BOOL: { size: 1, as: 'bool' },
  F16: { size: 2, as: 'float32' },
  BF16: { size: 2, as: 'float32' },
};

const WRITE_DTYPE: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

/** Larger headers are refused (as the reference implementation does). */
const MAX_HEADER = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  /** The dtype as stored in the file ('F16', 'F32', ...). */
  fileDtype: string;
  /** The dtype it is read as. */
  dtype: DType;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Where the data section starts in the file: 8 + header length. */
  dataStart: number;
}

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new SafetensorsError('safetensors needs a little-endian machine');
}

/** Parses and validates a header. `dataLength` is the size of the data section. */
export function parseHeader(
  json: Uint8Array,
  dataStart: number,
  dataLength: number,
  source: string,
): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (err) {
    throw new SafetensorsError(`${source}: safetensors header JSON is broken: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new SafetensorsError(`${source}: safetensors header must be a JSON object`);
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw new SafetensorsError(`${source}: __metadata__ must be an object of strings`);
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string')
          throw new SafetensorsError(
            `${source}: __metadata__.${k} must be a string, got ${JSON.stringify(s)}`,
          );
        metadata[k] = s;
      }
      continue;
    }
    const bad = (why: string) => new SafetensorsError(`${source}: tensor '${name}': ${why}`);
    if (typeof v !== 'object' || v === null) throw bad('entry is not an object');
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string') throw bad('no dtype');
    const kind = FILE_DTYPES[e.dtype];
    if (!kind)
      throw bad(`dtype ${e.dtype} is not supported (supported: ${Object.keys(FILE_DTYPES).join(', ')})`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`shape must be a list of non-negative integers, got ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`data_offsets must be [begin, end], got ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    const shape = e.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength)
      throw bad(`data_offsets [${begin}, ${end}] out of range (the data section has ${dataLength} bytes)`);
    if (end - begin !== n * kind.size)
      throw bad(
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes; ${e.dtype}[${shape.join(', ')}] needs ${n * kind.size}`,
      );
    entries.push({ name, fileDtype: e.dtype, dtype: kind.as, shape, begin, end });
  }
  // Overlaps: walk the non-empty ranges by start, remembering the one reaching furthest.
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  let reach: SafetensorsEntry | null = null;
  for (const c of sorted) {
    if (reach && c.begin < reach.end)
      throw new SafetensorsError(
        `${source}: tensors '${reach.name}' [${reach.begin}, ${reach.end}] and '${c.name}' [${c.begin}, ${c.end}] overlap`,
      );
    if (!reach || c.end > reach.end) reach = c;
  }
  return { entries, metadata, dataStart };
}

function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    out[i] =
      e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

function bf16ToF32(src: Uint16Array): Float32Array {
  const u = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
  return new Float32Array(u.buffer);
}

/**
 * A tensor from its raw bytes: a view where the bytes are aligned for the element type
 * and `view` is allowed, else an aligned copy; F16/BF16 converted to float32.
 */
function decode(e: SafetensorsEntry, bytes: Uint8Array, view: boolean): HostTensor {
  const n = e.shape.reduce((a, b) => a * b, 1);
  if (e.fileDtype === 'F16' || e.fileDtype === 'BF16') {
    const u16 =
      bytes.byteOffset % 2 === 0
        ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
        : new Uint16Array(bytes.slice().buffer);
    return { dtype: 'float32', shape: e.shape, data: e.fileDtype === 'F16' ? f16ToF32(u16) : bf16ToF32(u16) };
  }
  const size = bytesPerElement(e.dtype);
  let data: TypedArray;
  if (view && bytes.byteOffset % size === 0)
    data = typedView(e.dtype, bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  else {
    data = allocate(e.dtype, n);
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes);
  }
  return { dtype: e.dtype, shape: e.shape, data };
}

function typedView(d: DType, buf: ArrayBuffer, offset: number, n: number): TypedArray {
  switch (d) {
    case 'float32':
      return new Float32Array(buf, offset, n);
    case 'float64':
      return new Float64Array(buf, offset, n);
    case 'int64':
      return new BigInt64Array(buf, offset, n);
    case 'int32':
      return new Int32Array(buf, offset, n);
    case 'bool':
    case 'uint8':
      return new Uint8Array(buf, offset, n);
  }
}

export interface SafetensorsContent {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

/** Parses a whole safetensors file held in memory; tensors are views into `bytes` where aligned. */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsContent {
  assertLittleEndian();
  const { headerLen, dataStart } = readPrefix(bytes.subarray(0, 8), bytes.length, source);
  const header = parseHeader(bytes.subarray(8, 8 + headerLen), dataStart, bytes.length - dataStart, source);
  const tensors = new Map<string, HostTensor>();
  for (const e of header.entries)
    tensors.set(e.name, decode(e, bytes.subarray(dataStart + e.begin, dataStart + e.end), true));
  return { tensors, metadata: header.metadata };
}

function readPrefix(
  prefix: Uint8Array,
  fileSize: number,
  source: string,
): { headerLen: number; dataStart: number } {
  if (fileSize < 8 || prefix.length < 8)
    throw new SafetensorsError(
      `${source}: not a safetensors file (${fileSize} bytes, shorter than the 8-byte header length)`,
    );
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER))
    throw new SafetensorsError(`${source}: not a safetensors file (header length ${n} is implausible)`);
  const headerLen = Number(n);
  if (8 + headerLen > fileSize)
    throw new SafetensorsError(
      `${source}: truncated safetensors file: the header says ${headerLen} bytes, the file has ${fileSize - 8} after the length`,
    );
  return { headerLen, dataStart: 8 + headerLen };
}

/**
 * An open safetensors file: the header is read at once, each tensor on demand (one
 * positional read into a fresh, aligned array). Use for large checkpoints or when only
 * some tensors are needed.
 */
export class SafetensorsFile {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    readonly header: SafetensorsHeader,
    private readonly byName: Map<string, SafetensorsEntry>,
  ) {
    this.fd = fd;
  }

  static open(path: string): SafetensorsFile {
    assertLittleEndian();
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new SafetensorsError(`${path}: cannot open: ${(err as Error).message}`);
    }
    try {
      const size = fstatSync(fd).size;
      const prefix = new Uint8Array(Math.min(8, size));
      readFully(fd, prefix, 0, path);
      const { headerLen, dataStart } = readPrefix(prefix, size, path);
      const json = new Uint8Array(headerLen);
      readFully(fd, json, 8, path);
      const header = parseHeader(json, dataStart, size - dataStart, path);
      return new SafetensorsFile(path, fd, header, new Map(header.entries.map((e) => [e.name, e])));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  get names(): string[] {
    return this.header.entries.map((e) => e.name);
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.byName.get(name);
    if (!e) throw new SafetensorsError(`${this.path}: no tensor '${name}'`);
    return e;
  }

  read(name: string): HostTensor {
    const e = this.entry(name);
    if (this.fd === null) throw new SafetensorsError(`${this.path}: file is closed`);
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (e.fileDtype === 'F16' || e.fileDtype === 'BF16') {
      const raw = new Uint8Array(e.end - e.begin);
      readFully(this.fd, raw, this.header.dataStart + e.begin, this.path);
      return decode(e, raw, false);
    }
    const data = allocate(e.dtype, n);
    readFully(
      this.fd,
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      this.header.dataStart + e.begin,
      this.path,
    );
    return { dtype: e.dtype, shape: e.shape, data };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function readFully(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0)
      throw new SafetensorsError(
        `${path}: truncated safetensors file (ended ${into.length - done} bytes early)`,
      );
    done += n;
  }
}

/** Reads every tensor (or the named ones) of a safetensors file into aligned arrays. */
export function readSafetensors(path: string, opts: { names?: readonly string[] } = {}): SafetensorsContent {
  const f = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, HostTensor>();
    for (const name of opts.names ?? f.names) tensors.set(name, f.read(name));
    return { tensors, metadata: { ...f.metadata } };
  } finally {
    f.close();
  }
}

type TensorSource = Record<string, HostTensor> | Map<string, HostTensor> | Iterable<[string, HostTensor]>;

function entriesOf(t: TensorSource): [string, HostTensor][] {
  if (t instanceof Map) return [...t.entries()];
  if (Symbol.iterator in Object(t)) return [...(t as Iterable<[string, HostTensor]>)];
  return Object.entries(t as Record<string, HostTensor>);
}

/** The file as a list of chunks (header, then each tensor's bytes, no copies of tensor data). */
export function encodeSafetensors(
  tensors: TensorSource,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  assertLittleEndian();
  // Larger elements first, then by name: every tensor's offset stays aligned to its element
  // size, with no gaps between tensors (as the reference writer does).
  const list = entriesOf(tensors).sort(
    ([a, ta], [b, tb]) =>
      bytesPerElement(tb.dtype) - bytesPerElement(ta.dtype) || (a < b ? -1 : a > b ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const chunks: Uint8Array[] = [];
  const seen = new Set<string>();
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new SafetensorsError(`cannot write a tensor named '__metadata__'`);
    if (seen.has(name)) throw new SafetensorsError(`tensor '${name}' given twice`);
    seen.add(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new SafetensorsError(
        `tensor '${name}': shape [${t.shape.join(', ')}] needs ${n} values, has ${t.data.length}`,
      );
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = {
      dtype: WRITE_DTYPE[t.dtype],
      shape: [...t.shape],
      data_offsets: [offset, offset + bytes.length],
    };
    offset += bytes.length;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  // Pad with spaces so that the data section starts 8-byte aligned.
  const enc = new TextEncoder();
  let hb = enc.encode(json);
  const pad = (8 - (hb.length % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    hb = enc.encode(json);
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(hb.length), true);
  return [prefix, hb, ...chunks];
}

/** Joins encodeSafetensors' chunks into one buffer (for small files and tests). */
export function safetensorsBytes(tensors: TensorSource, metadata?: Record<string, string>): Uint8Array {
  const chunks = encodeSafetensors(tensors, metadata);
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Writes a safetensors file atomically (temporary sibling, fsync, rename). */
export function writeSafetensors(
  path: string,
  tensors: TensorSource,
  metadata?: Record<string, string>,
): void {
  writeChunksAtomic(path, encodeSafetensors(tensors, metadata));
}

/**
 * Writes chunks to `path` so that readers see the old file or the whole new one: a
 * temporary sibling is written and fsynced, then renamed over `path`.
 */
export function writeChunksAtomic(path: string, chunks: readonly Uint8Array[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    for (const c of chunks) {
      let done = 0;
      while (done < c.length) done += writeSync(fd, c, done, c.length - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
}
