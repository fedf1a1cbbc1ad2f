/** Safetensors: byte layout, round trips, F16/BF16 reading, lazy reads, and errors that name the file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '../../src/graph/runtime.js';
import {
  SafetensorsFile,
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  safetensorsBytes,
  writeSafetensors,
} from '../../src/graph/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'lemer-safetensors-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A file by hand: 8-byte LE length, the header text, the data. */
function handMade(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

test('the written bytes follow the format exactly (as the reference serializer lays them out)', () => {
  const bytes = safetensorsBytes(
    {
      b: { dtype: 'float32', shape: [2], data: new Float32Array([1, -2]) },
      a: { dtype: 'int64', shape: [1], data: new BigInt64Array([7n]) },
    },
    { format: 'pt' },
  );
  // Larger elements first (I64 before F32), then names; header padded with spaces to 8.
  let header =
    '{"__metadata__":{"format":"pt"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const data = new Uint8Array(16);
  new DataView(data.buffer).setBigInt64(0, 7n, true);
  new DataView(data.buffer).setFloat32(8, 1, true);
  new DataView(data.buffer).setFloat32(12, -2, true);
  assert.deepEqual(bytes, handMade(header, data));
  assert.equal((8 + header.length) % 8, 0);
});

test('round trip of every dtype, scalars and empty tensors, in memory and through a file', () => {
  const tensors: Record<string, HostTensor> = {
    f32: { dtype: 'float32', shape: [2, 3], data: Float32Array.from([1.5, -2, 3e-8, 4, 5, 6]) },
    f64: { dtype: 'float64', shape: [3], data: Float64Array.from([Math.PI, -1e300, 5e-324]) },
    i64: { dtype: 'int64', shape: [2], data: BigInt64Array.from([-(2n ** 62n), 42n]) },
    i32: { dtype: 'int32', shape: [1, 1], data: Int32Array.from([-7]) },
    u8: { dtype: 'uint8', shape: [3], data: Uint8Array.from([0, 128, 255]) },
    mask: { dtype: 'bool', shape: [2], data: Uint8Array.from([1, 0]) },
    scalar: { dtype: 'float32', shape: [], data: Float32Array.from([9]) },
    empty: { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
  };
  const check = (got: Map<string, HostTensor>) => {
    assert.deepEqual([...got.keys()].sort(), Object.keys(tensors).sort());
    for (const [n, t] of Object.entries(tensors)) {
      const g = got.get(n)!;
      assert.equal(g.dtype, t.dtype, n);
      assert.deepEqual(g.shape, t.shape, n);
      assert.deepEqual(
        Array.from(g.data as ArrayLike<number | bigint>),
        Array.from(t.data as ArrayLike<number | bigint>),
        n,
      );
      assert.equal(g.data.constructor, t.data.constructor, n);
      assert.equal(g.data.byteOffset % g.data.BYTES_PER_ELEMENT, 0, `${n} aligned`);
    }
  };
  const mem = parseSafetensors(safetensorsBytes(tensors, { k: 'v' }));
  check(mem.tensors);
  assert.deepEqual(mem.metadata, { k: 'v' });
  const path = join(dir, 'all.safetensors');
  writeSafetensors(path, tensors, { k: 'v' });
  const file = readSafetensors(path);
  check(file.tensors);
  assert.deepEqual(file.metadata, { k: 'v' });
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.includes('.tmp')),
    [],
    'no temporary file left',
  );
  // In memory, aligned tensors are views into the buffer (no copy).
  const bytes = safetensorsBytes(tensors);
  const view = parseSafetensors(bytes).tensors.get('f64')!;
  assert.equal(view.data.buffer, bytes.buffer);
});

test('a misaligned buffer gives aligned copies', () => {
  const inner = safetensorsBytes({ x: { dtype: 'float64', shape: [2], data: Float64Array.from([1, 2]) } });
  const shifted = new Uint8Array(inner.length + 1);
  shifted.set(inner, 1);
  const t = parseSafetensors(shifted.subarray(1)).tensors.get('x')!;
  assert.deepEqual(Array.from(t.data as Float64Array), [1, 2]);
});

test('F16 and BF16 are read as float32', () => {
  // F16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), inf, -0.
  const f16 = Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x8000]);
  // BF16: 1, -2, 3.140625, -inf.
  const bf16 = Uint16Array.from([0x3f80, 0xc000, 0x4049, 0xff80]);
  const data = new Uint8Array(22);
  data.set(new Uint8Array(f16.buffer), 0);
  data.set(new Uint8Array(bf16.buffer), 14);
  let header =
    '{"h":{"dtype":"F16","shape":[7],"data_offsets":[0,14]},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[14,22]}}';
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const path = join(dir, 'half.safetensors');
  writeFileSync(path, handMade(header, data));
  for (const tensors of [readSafetensors(path).tensors, parseSafetensors(readFileSync(path)).tensors]) {
    const h = tensors.get('h')!;
    assert.equal(h.dtype, 'float32');
    assert.deepEqual(Array.from(h.data as Float32Array), [1, -2, 0.5, 65504, 2 ** -24, Infinity, -0]);
    const b = tensors.get('b')!;
    assert.deepEqual(b.shape, [2, 2]);
    assert.deepEqual(Array.from(b.data as Float32Array), [1, -2, 3.140625, -Infinity]);
  }
});

test('SafetensorsFile reads the header only, then single tensors on demand', () => {
  const path = join(dir, 'lazy.safetensors');
  writeSafetensors(path, {
    big: { dtype: 'float32', shape: [1000], data: new Float32Array(1000).fill(3) },
    small: { dtype: 'int32', shape: [2], data: Int32Array.from([4, 5]) },
  });
  const f = SafetensorsFile.open(path);
  assert.deepEqual(f.names.sort(), ['big', 'small']);
  assert.deepEqual(f.entry('big').shape, [1000]);
  assert.deepEqual(Array.from(f.read('small').data as Int32Array), [4, 5]);
  assert.throws(() => f.read('nope'), /lazy\.safetensors: no tensor 'nope'/);
  f.close();
  assert.throws(() => f.read('small'), /closed/);
  assert.deepEqual([...readSafetensors(path, { names: ['small'] }).tensors.keys()], ['small']);
});

test('broken files fail with the file name and what is wrong', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['short', new Uint8Array(5), /short\.safetensors: not a safetensors file \(5 bytes/],
    [
      'huge-header',
      (() => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, 2n ** 40n, true);
        return b;
      })(),
      /huge-header\.safetensors: not a safetensors file \(header length \d+ is implausible\)/,
    ],
    [
      'truncated-header',
      handMade('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}').subarray(0, 30),
      /truncated-header\.safetensors: truncated safetensors file: the header says 54 bytes/,
    ],
    ['bad-json', handMade('{"a": [1, 2'), /bad-json\.safetensors: safetensors header JSON is broken/],
    ['not-object', handMade('[1,2]'), /not-object\.safetensors: safetensors header must be a JSON object/],
    [
      'out-of-range',
      handMade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(4)),
      /out-of-range\.safetensors: tensor 'a': data_offsets \[0, 8\] out of range \(the data section has 4 bytes\)/,
    ],
    [
      'wrong-size',
      handMade('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)),
      /wrong-size\.safetensors: tensor 'a': data_offsets \[0, 8\] hold 8 bytes; F32\[3\] needs 12/,
    ],
    [
      'overlap',
      handMade(
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
        new Uint8Array(12),
      ),
      /overlap\.safetensors: tensors 'a' \[0, 8\] and 'b' \[4, 12\] overlap/,
    ],
    [
      'bad-dtype',
      handMade('{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', new Uint8Array(8)),
      /bad-dtype\.safetensors: tensor 'a': dtype C64 is not supported/,
    ],
    [
      'bad-shape',
      handMade('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)),
      /bad-shape\.safetensors: tensor 'a': shape must be a list of non-negative integers/,
    ],
    [
      'bad-meta',
      handMade('{"__metadata__":{"n":3}}'),
      /bad-meta\.safetensors: __metadata__\.n must be a string/,
    ],
  ];
  for (const [name, bytes, re] of cases) {
    const path = join(dir, `${name}.safetensors`);
    writeFileSync(path, bytes);
    assert.throws(() => readSafetensors(path), re, name);
    assert.throws(() => parseSafetensors(bytes, path), re, `${name} (in memory)`);
  }
  assert.throws(() => readSafetensors(join(dir, 'absent.safetensors')), /absent\.safetensors: cannot open/);
  // Data cut short after a valid header: the header's offsets run past the end.
  const full = safetensorsBytes({ a: { dtype: 'float32', shape: [4], data: new Float32Array(4) } });
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, full.subarray(0, full.length - 3));
  assert.throws(
    () => readSafetensors(cut),
    /cut\.safetensors: tensor 'a': data_offsets \[0, 16\] out of range \(the data section has 13 bytes\)/,
  );
});

test('writing refuses inconsistent tensors and duplicate names', () => {
  assert.throws(
    () => encodeSafetensors({ a: { dtype: 'float32', shape: [3], data: new Float32Array(2) } }),
    /tensor 'a': shape \[3\] needs 3 values, has 2/,
  );
  assert.throws(
    () =>
      encodeSafetensors([
        ['a', { dtype: 'float32', shape: [1], data: new Float32Array(1) }],
        ['a', { dtype: 'float32', shape: [1], data: new Float32Array(1) }],
      ]),
    /tensor 'a' given twice/,
  );
});
