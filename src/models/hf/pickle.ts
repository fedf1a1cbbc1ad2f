/**
 * A safe reader for `pytorch_model.bin` (torch.save of a state dict): the ZIP archive
 * PyTorch writes since 1.6 (`<name>/data.pkl` + `<name>/data/<key>` storages) and the
 * older one-file layout (magic, protocol, sys_info, the pickle, storage keys, raw
 * storages). The pickle is interpreted, never executed: only the opcodes a saved state
 * dict uses are known, and only the globals it holds are accepted (tensor rebuilds, typed
 * storages, OrderedDict); any other global or opcode is refused with an error naming the
 * file and what was refused. Floating tensors come out as float32 (float64 stays), integer
 * ones as int64 / int32.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import type { DType } from '../../graph/dtype.js';
import type { HostTensor } from '../../graph/runtime.js';
import { HfLoadError } from './config.js';
import { ZipReader, isZip } from './zip.js';

export class UnsafePickleError extends HfLoadError {
  override name = 'UnsafePickleError';
}

interface StorageKind {
  size: number;
  read: 'f32' | 'f64' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';
}

/** torch's typed storages, by class name. */
const STORAGES: Record<string, StorageKind> = {
  FloatStorage: { size: 4, read: 'f32' },
  DoubleStorage: { size: 8, read: 'f64' },
  HalfStorage: { size: 2, read: 'f16' },
  BFloat16Storage: { size: 2, read: 'bf16' },
  LongStorage: { size: 8, read: 'i64' },
  IntStorage: { size: 4, read: 'i32' },
  ShortStorage: { size: 2, read: 'i16' },
  CharStorage: { size: 1, read: 'i8' },
  ByteStorage: { size: 1, read: 'u8' },
  BoolStorage: { size: 1, read: 'bool' },
};

const REBUILDS = new Set([
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
]);
const ORDERED_DICT = 'collections.OrderedDict';

class Global {
  constructor(readonly name: string) {}
}
class StorageRef {
  constructor(
    readonly kind: StorageKind,
    readonly kindName: string,
    readonly key: string,
    readonly numel: number,
    /** Legacy files: this storage is elements [viewOffset, viewOffset + numel) of storage `key`. */
    readonly viewOffset: number | null = null,
  ) {}
}
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}
class PyDict extends Map<unknown, unknown> {}

function allowedGlobal(name: string): boolean {
  return (
    name === ORDERED_DICT || REBUILDS.has(name) || (name.startsWith('torch.') && name.slice(6) in STORAGES)
  );
}

const OPNAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Python's int from little-endian two's-complement bytes, as a number when safe. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

type PersistentLoad = (pid: unknown) => unknown;

/**
 * Interprets one pickle starting at `start`; returns the value and where it ended. Only
 * the opcodes and globals of a saved state dict are known: everything else throws.
 */
export function unpickle(
  bytes: Uint8Array,
  source: string,
  persistentLoad: PersistentLoad,
  start = 0,
): { value: unknown; end: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder('utf-8');
  const latin1 = new TextDecoder('latin1');
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let p = start;
  const need = (n: number) => {
    if (p + n > bytes.length)
      throw new HfLoadError(`${source}: truncated pickle (at byte ${p}, ${n} more needed)`);
  };
  const u8 = () => (need(1), bytes[p++]);
  const u16 = () => (need(2), (p += 2), dv.getUint16(p - 2, true));
  const u32 = () => (need(4), (p += 4), dv.getUint32(p - 4, true));
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(bytes.length))
      throw new HfLoadError(`${source}: corrupt pickle (length ${v} at byte ${p - 8})`);
    return Number(v);
  };
  const take = (n: number) => (need(n), (p += n), bytes.subarray(p - n, p));
  const line = () => {
    const e = bytes.indexOf(0x0a, p);
    if (e < 0) throw new HfLoadError(`${source}: truncated pickle (unterminated line at byte ${p})`);
    const s = latin1.decode(bytes.subarray(p, e));
    p = e + 1;
    return s;
  };
  const pop = () => {
    if (!stack.length) throw new HfLoadError(`${source}: corrupt pickle (stack underflow at byte ${p})`);
    return stack.pop();
  };
  const popMark = () => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) throw new HfLoadError(`${source}: corrupt pickle (no MARK at byte ${p})`);
    stack = prev;
    return items;
  };
  const top = () => {
    if (!stack.length) throw new HfLoadError(`${source}: corrupt pickle (empty stack at byte ${p})`);
    return stack[stack.length - 1];
  };
  const global = (name: string, at: number): Global => {
    if (!allowedGlobal(name))
      throw new UnsafePickleError(
        `${source}: refused pickle global '${name}' (byte ${at}): a saved state dict holds only tensors, ` +
          `storages and ordered dicts, and nothing in the file is executed; convert it to model.safetensors ` +
          `if you trust it`,
      );
    return new Global(name);
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map))
      throw new HfLoadError(`${source}: corrupt pickle (SETITEM on a non-dict at byte ${p})`);
    for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x2e: // STOP
        return { value: pop(), end: p };
      case 0x30: // POP
        if (stack.length) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
        {
          // Not stack.push(popMark()): popMark replaces `stack`.
          const items = popMark();
          stack.push(items);
        }
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(dv.getInt32(p, true));
        p += 4;
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(take(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(decodeLong(take(u32())));
        break;
      case 0x47: // BINFLOAT
        need(8);
        stack.push(dv.getFloat64(p, false));
        p += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(dec.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(dec.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(dec.decode(take(u64())));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1.decode(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw new HfLoadError(`${source}: corrupt pickle (memo ${k} unset at byte ${at})`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(global(`${module}.${name}`, at));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof name !== 'string' || typeof module !== 'string')
          throw new HfLoadError(`${source}: corrupt pickle (STACK_GLOBAL without strings at byte ${at})`);
        stack.push(global(`${module}.${name}`, at));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args, source, at));
        break;
      }
      case 0x62: {
        // BUILD: OrderedDict's state (a state dict's `_metadata` attribute) is dropped.
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map) && !(obj instanceof TensorRef))
          throw new UnsafePickleError(`${source}: refused pickle BUILD on ${describe(obj)} (byte ${at})`);
        void state;
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l))
          throw new HfLoadError(`${source}: corrupt pickle (APPEND on a non-list at byte ${at})`);
        l.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l))
          throw new HfLoadError(`${source}: corrupt pickle (APPENDS on a non-list at byte ${at})`);
        l.push(...items);
        break;
      }
      default:
        throw new UnsafePickleError(
          `${source}: refused pickle opcode ${OPNAMES[op] ?? 'unknown'} (0x${op.toString(16).padStart(2, '0')}) ` +
            `at byte ${at}: not part of a saved state dict`,
        );
    }
  }
}

function describe(x: unknown): string {
  if (x instanceof Global) return `global '${x.name}'`;
  if (x === null) return 'None';
  if (Array.isArray(x)) return 'a tuple or list';
  return typeof x;
}

function intList(x: unknown, what: string, source: string): number[] {
  if (!Array.isArray(x) || !x.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0))
    throw new HfLoadError(`${source}: corrupt tensor record (${what} is not a tuple of sizes)`);
  return x as number[];
}

function reduce(fn: unknown, args: unknown, source: string, at: number): unknown {
  if (!(fn instanceof Global) || !Array.isArray(args))
    throw new UnsafePickleError(`${source}: refused pickle REDUCE of ${describe(fn)} (byte ${at})`);
  switch (fn.name) {
    case ORDERED_DICT: {
      const d = new PyDict();
      if (args.length && Array.isArray(args[0]))
        for (const kv of args[0] as unknown[]) if (Array.isArray(kv) && kv.length === 2) d.set(kv[0], kv[1]);
      return d;
    }
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor': {
      const [storage, offset, size, stride] = args;
      if (!(storage instanceof StorageRef) || typeof offset !== 'number')
        throw new HfLoadError(`${source}: corrupt tensor record at byte ${at}`);
      return new TensorRef(storage, offset, intList(size, 'size', source), intList(stride, 'stride', source));
    }
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      if (!(args[0] instanceof TensorRef))
        throw new HfLoadError(`${source}: corrupt parameter record at byte ${at}`);
      return args[0];
    default:
      // Storage classes are only ever arguments of persistent ids, never called.
      throw new UnsafePickleError(`${source}: refused pickle call of global '${fn.name}' (byte ${at})`);
  }
}

function storageFromPid(pid: unknown, source: string): StorageRef {
  // ('storage', storage_type, key, location, numel[, view_metadata])
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5)
    throw new UnsafePickleError(
      `${source}: refused persistent id ${JSON.stringify(String(pid))}: not a torch storage`,
    );
  const [, type, key, , numel, viewMeta] = pid as unknown[];
  if (!(type instanceof Global) || !type.name.startsWith('torch.') || !(type.name.slice(6) in STORAGES))
    throw new UnsafePickleError(`${source}: refused storage type ${describe(type)}`);
  if (typeof key !== 'string' || typeof numel !== 'number')
    throw new HfLoadError(`${source}: corrupt storage record (key ${String(key)})`);
  const kindName = type.name.slice(6);
  if (Array.isArray(viewMeta) && viewMeta.length === 3) {
    const [, voff, vsize] = viewMeta as unknown[];
    if (typeof voff !== 'number' || typeof vsize !== 'number')
      throw new HfLoadError(`${source}: corrupt storage view record (key ${key})`);
    return new StorageRef(STORAGES[kindName], kindName, key, vsize, voff);
  }
  return new StorageRef(STORAGES[kindName], kindName, key, numel);
}

/** The element values of a storage, as the tensor's host dtype. */
function decodeStorage(
  kind: StorageKind,
  bytes: Uint8Array,
): Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array {
  // The archive reader hands out fresh buffers: view them when aligned, else copy.
  const aligned = bytes.byteOffset % kind.size === 0;
  const buf = aligned ? bytes.buffer : bytes.slice().buffer;
  const off = aligned ? bytes.byteOffset : 0;
  const n = bytes.length / kind.size;
  switch (kind.read) {
    case 'f32':
      return new Float32Array(buf, off, n);
    case 'f64':
      return new Float64Array(buf, off, n);
    case 'f16': {
      const src = new Uint16Array(buf, off, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const h = src[i];
        const s = h & 0x8000 ? -1 : 1;
        const e = (h >> 10) & 0x1f;
        const m = h & 0x3ff;
        out[i] =
          e === 0
            ? s * m * 2 ** -24
            : e === 31
              ? m
                ? NaN
                : s * Infinity
              : s * (1 + m / 1024) * 2 ** (e - 15);
      }
      return out;
    }
    case 'bf16': {
      const src = new Uint16Array(buf, off, n);
      const u = new Uint32Array(n);
      for (let i = 0; i < n; i++) u[i] = src[i] << 16;
      return new Float32Array(u.buffer);
    }
    case 'i64':
      return new BigInt64Array(buf, off, n);
    case 'i32':
      return new Int32Array(buf, off, n);
    case 'i16':
      return Int32Array.from(new Int16Array(buf, off, n));
    case 'i8':
      return Int32Array.from(new Int8Array(buf, off, n));
    case 'u8':
    case 'bool':
      return new Uint8Array(buf, off, n);
  }
}

const HOST_DTYPE: Record<StorageKind['read'], DType> = {
  f32: 'float32',
  f64: 'float64',
  f16: 'float32',
  bf16: 'float32',
  i64: 'int64',
  i32: 'int32',
  i16: 'int32',
  i8: 'int32',
  u8: 'uint8',
  bool: 'bool',
};

/** A tensor from its storage: offset, sizes and strides applied (a contiguous copy). */
function materialise(
  t: TensorRef,
  storage: ReturnType<typeof decodeStorage>,
  name: string,
  source: string,
): HostTensor {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.shape.length !== t.stride.length)
    throw new HfLoadError(
      `${source}: tensor '${name}': ${t.shape.length} sizes but ${t.stride.length} strides`,
    );
  let last = t.offset;
  for (let i = 0; i < t.shape.length; i++) if (t.shape[i] > 0) last += (t.shape[i] - 1) * t.stride[i];
  if (n > 0 && last >= storage.length)
    throw new HfLoadError(
      `${source}: tensor '${name}' reaches element ${last} of a storage of ${storage.length} (truncated or corrupt file)`,
    );
  const dtype = HOST_DTYPE[t.storage.kind.read];
  // Contiguous (every tensor of an ordinary state dict): one copy of the range.
  let contiguous = true;
  for (let d = t.shape.length - 1, want = 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t.stride[d] !== want) contiguous = false;
    want *= t.shape[d];
  }
  if (contiguous) return { dtype, shape: [...t.shape], data: storage.subarray(t.offset, t.offset + n) };
  const ctor = storage.constructor as new (n: number) => typeof storage;
  const out = new ctor(n);
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = t.offset;
  for (let i = 0; i < n; i++) {
    (out as unknown as unknown[])[i] = (storage as unknown as unknown[])[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += t.stride[d];
      if (idx[d] < t.shape[d]) break;
      src -= t.stride[d] * t.shape[d];
      idx[d] = 0;
    }
  }
  return { dtype, shape: [...t.shape], data: out };
}

function stateDictEntries(value: unknown, source: string): [string, TensorRef][] {
  if (!(value instanceof Map))
    throw new HfLoadError(
      `${source}: not a state dict (the pickle holds ${describe(value)}, not a dict of tensors)`,
    );
  const out: [string, TensorRef][] = [];
  for (const [k, v] of value) {
    if (typeof k !== 'string')
      throw new HfLoadError(`${source}: state dict key ${String(k)} is not a string`);
    if (!(v instanceof TensorRef))
      throw new HfLoadError(`${source}: state dict entry '${k}' is ${describe(v)}, not a tensor`);
    out.push([k, v]);
  }
  return out;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** Reads a torch.save'd state dict (ZIP or legacy layout) without executing anything. */
export function readTorchStateDict(path: string): Map<string, HostTensor> {
  const head = new Uint8Array(4);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  return isZip(head) ? readZipStateDict(path) : readLegacyStateDict(path);
}

function readZipStateDict(path: string): Map<string, HostTensor> {
  const zip = ZipReader.open(path);
  try {
    const pkl = [...zip.entries.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
    if (!pkl) throw new HfLoadError(`${path}: a ZIP file without data.pkl is not a torch.save archive`);
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const order = zip.entries.get(`${prefix}byteorder`);
    if (order) {
      const o = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
      if (o !== 'little')
        throw new HfLoadError(`${path}: saved on a ${o}-endian machine; only little-endian is read`);
    }
    const refs = new Map<string, StorageRef>();
    const { value } = unpickle(zip.read(pkl), path, (pid) => {
      const s = storageFromPid(pid, path);
      refs.set(s.key, s);
      return s;
    });
    const entries = stateDictEntries(value, path);
    const decoded = new Map<string, ReturnType<typeof decodeStorage>>();
    const out = new Map<string, HostTensor>();
    for (const [name, t] of entries) {
      const key = t.storage.key;
      let data = decoded.get(key);
      if (!data) {
        const entry = `${prefix}data/${key}`;
        if (!zip.entries.has(entry))
          throw new HfLoadError(`${path}: storage '${key}' of '${name}' is missing from the archive`);
        const raw = zip.read(entry);
        if (raw.length % t.storage.kind.size)
          throw new HfLoadError(
            `${path}: storage '${key}' has ${raw.length} bytes, not a whole number of ${t.storage.kindName} elements`,
          );
        data = decodeStorage(t.storage.kind, raw);
        decoded.set(key, data);
      }
      out.set(name, materialise(t, data, name, path));
    }
    return out;
  } finally {
    zip.close();
  }
}

function readLegacyStateDict(path: string): Map<string, HostTensor> {
  const bytes = new Uint8Array(readFileSync(path));
  if (bytes.length < 2 || bytes[0] !== 0x80)
    throw new HfLoadError(`${path}: neither a ZIP archive nor a pickle: not a torch.save file`);
  const none = () => {
    throw new HfLoadError(`${path}: unexpected persistent id in the file header`);
  };
  const magic = unpickle(bytes, path, none, 0);
  if (magic.value !== LEGACY_MAGIC && BigInt(magic.value as number) !== LEGACY_MAGIC)
    throw new HfLoadError(`${path}: not a torch.save file (bad magic number)`);
  const proto = unpickle(bytes, path, none, magic.end);
  if (proto.value !== 1001)
    throw new HfLoadError(`${path}: unsupported torch.save protocol ${String(proto.value)}`);
  const sys = unpickle(bytes, path, none, proto.end);
  if (sys.value instanceof Map && sys.value.get('little_endian') === false)
    throw new HfLoadError(`${path}: saved on a big-endian machine; only little-endian is read`);
  const refs = new Map<string, StorageRef>();
  const main = unpickle(
    bytes,
    path,
    (pid) => {
      const s = storageFromPid(pid, path);
      if (!refs.has(s.key)) refs.set(s.key, s);
      return s;
    },
    sys.end,
  );
  const keys = unpickle(bytes, path, none, main.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string'))
    throw new HfLoadError(`${path}: corrupt storage key list`);
  // Raw storages follow, each as an int64 element count and the bytes.
  const raw = new Map<string, Uint8Array>();
  let p = keys.end;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys.value as string[]) {
    const ref = refs.get(key);
    if (!ref) throw new HfLoadError(`${path}: storage '${key}' listed but never used`);
    if (p + 8 > bytes.length) throw new HfLoadError(`${path}: truncated file (storage '${key}' missing)`);
    const n = Number(dv.getBigInt64(p, true));
    const len = n * ref.kind.size;
    if (!(n >= 0)) throw new HfLoadError(`${path}: corrupt file (storage '${key}' has ${n} elements)`);
    if (p + 8 + len > bytes.length)
      throw new HfLoadError(`${path}: truncated file (storage '${key}' ends early)`);
    raw.set(key, bytes.subarray(p + 8, p + 8 + len));
    p += 8 + len;
  }
  const entries = stateDictEntries(main.value, path);
  const out = new Map<string, HostTensor>();
  for (const [name, t] of entries) {
    const s = t.storage;
    const root = raw.get(s.key);
    if (!root) throw new HfLoadError(`${path}: storage '${s.key}' of '${name}' is missing`);
    let data = decodeStorage(s.kind, root);
    if (s.viewOffset !== null) data = data.subarray(s.viewOffset, s.viewOffset + s.numel) as typeof data;
    out.set(name, materialise(t, data, name, path));
  }
  return out;
}
