// The Hugging Face folder loader on bad input: every case a clear error naming the file
// and the problem. And the safe pickle reader: nothing in a pickle is ever executed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../../../src/graph/graph.js';
import {
  HfLoadError,
  UnsafePickleError,
  loadHfWeights,
  mapWeights,
  readHfConfig,
  readHfWeights,
  readTorchStateDict,
} from '../../../src/models/hf/index.js';
import { crc32 } from '../../../src/models/hf/zip.js';
import { loadEncoder } from '../../../src/models/encoders.js';
import { bertEncoder, type BertEncoder } from '../../../src/models/bert/index.js';
import { fixtureDir } from '../bert/helpers.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'lemer-hf-'));
}

/** A copy of a fixture folder with config.json edited. */
function withConfig(fixture: string, edit: (c: Record<string, unknown>) => void): string {
  const d = join(tmp(), fixture);
  cpSync(fixtureDir(fixture), d, { recursive: true });
  const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(join(d, 'config.json'), JSON.stringify(c));
  return d;
}

/** A ZIP archive of stored entries, as torch.save writes them. */
function zipOf(entries: Record<string, Uint8Array>): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(entries)) {
    const n = enc.encode(name);
    const crc = crc32(data);
    const lh = new Uint8Array(30 + n.length);
    const lv = new DataView(lh.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, n.length, true);
    lh.set(n, 30);
    const ch = new Uint8Array(46 + n.length);
    const cv = new DataView(ch.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, n.length, true);
    cv.setUint32(42, offset, true);
    ch.set(n, 46);
    locals.push(lh, data);
    centrals.push(ch);
    offset += lh.length + data.length;
  }
  const cdSize = centrals.reduce((a, c) => a + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, centrals.length, true);
  ev.setUint16(10, centrals.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return Buffer.concat([...locals, ...centrals, end]);
}

/** pickle protocol 2 of `os.system('touch <marker>')`, as a malicious __reduce__ writes it. */
function osSystemPickle(marker: string): Uint8Array {
  const cmd = Buffer.from(`touch ${marker}`, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(cmd.length);
  return Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from('cos\nsystem\n', 'latin1'),
    Buffer.from([0x58]),
    len,
    cmd,
    Buffer.from([0x85, 0x52, 0x2e]), // TUPLE1 REDUCE STOP
  ]);
}

test('a missing folder, a folder without config.json, broken JSON: errors name the path', () => {
  const d = tmp();
  assert.throws(() => readHfConfig(join(d, 'nope')), /nope: no such folder/);
  assert.throws(
    () => loadEncoder(d),
    (e: Error) => e instanceof HfLoadError && e.message.includes(`${join(d, 'config.json')}: not found`),
  );
  writeFileSync(join(d, 'config.json'), '{"model_type": "bert",');
  assert.throws(() => loadEncoder(d), /config\.json: not valid JSON/);
  writeFileSync(join(d, 'config.json'), '[1, 2]');
  assert.throws(() => loadEncoder(d), /config\.json: expected a JSON object, got an array/);
});

test('an unknown model_type lists the known ones', () => {
  const d = withConfig('bert-tiny', (c) => (c.model_type = 'gpt2'));
  assert.throws(
    () => loadEncoder(d),
    (e: Error) => /config\.json: unknown model_type "gpt2" \(known: .*bert.*roberta/.test(e.message),
  );
  const d2 = withConfig('bert-tiny', (c) => {
    delete c.model_type;
    delete c.architectures;
  });
  assert.throws(() => loadEncoder(d2), /no "model_type" key/);
  // An old config without model_type names its class: that is enough.
  const d3 = withConfig('roberta-tiny', (c) => delete c.model_type);
  assert.equal(loadEncoder(d3).modelType, 'roberta');
});

test('a folder with a config but no weights says which files it looked for', () => {
  const d = tmp();
  writeFileSync(join(d, 'config.json'), '{"model_type": "bert"}');
  assert.throws(
    () => loadEncoder(d),
    /no weights: expected one of model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin/,
  );
});

test('config sizes that disagree with the weights: one error lists wrong-shaped, missing and unexpected tensors', () => {
  const d = withConfig('bert-tiny', (c) => (c.intermediate_size = 48));
  assert.throws(
    () => loadEncoder(d),
    (e: Error) =>
      e instanceof HfLoadError &&
      e.message.includes(join(d, 'model.safetensors')) &&
      /6 wrong-shaped/.test(e.message) &&
      /encoder\.layer\.0\.intermediate\.dense\.weight: the file has \[64, 32\], .*config\.json gives \[48, 32\]/.test(
        e.message,
      ),
  );
  const more = withConfig('bert-tiny', (c) => (c.num_hidden_layers = 3));
  assert.throws(() => loadEncoder(more), /16 missing:\n {2}encoder\.layer\.2\./);
  const fewer = withConfig('bert-tiny', (c) => (c.num_hidden_layers = 1));
  assert.throws(() => loadEncoder(fewer), /16 unexpected:\n {2}encoder\.layer\.1\./);
});

test('mapWeights: prefixes, aliases, ignorable; a second tensor for one name is unexpected', () => {
  const t = (shape: number[]) => ({
    dtype: 'float32' as const,
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
  });
  const loaded = new Map([
    ['bert.a.LayerNorm.gamma', t([2])],
    ['pooler.dense.weight', t([2, 2])],
  ]);
  const r = mapWeights(loaded, [{ name: 'a.LayerNorm.weight', shape: [2], dtype: 'float64' }], {
    prefixes: ['bert.'],
    aliases: [[/LayerNorm\.gamma$/, 'LayerNorm.weight']],
    ignorable: [/^pooler\./],
    file: 'f.safetensors',
  });
  assert.equal(r.weights.get('a.LayerNorm.weight')!.dtype, 'float64');
  assert.deepEqual(r.unused, ['pooler.dense.weight']);
  loaded.set('a.LayerNorm.weight', t([2]));
  assert.throws(
    () =>
      mapWeights(loaded, [{ name: 'a.LayerNorm.weight', shape: [2] }], {
        prefixes: ['bert.'],
        aliases: [[/gamma$/, 'weight']],
        ignorable: [/^pooler\./],
        file: 'f.safetensors',
      }),
    /f\.safetensors: .*1 unexpected:\n {2}a\.LayerNorm\.weight \(a second tensor/s,
  );
});

test('truncated and corrupt safetensors files: errors name the file and the problem', () => {
  const d = join(tmp(), 'bert');
  cpSync(fixtureDir('bert-tiny'), d, { recursive: true });
  const file = join(d, 'model.safetensors');
  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
  assert.throws(
    () => readHfWeights(d),
    (e: Error) =>
      e instanceof HfLoadError && e.message.startsWith(file) && /out of range|truncated/.test(e.message),
  );
  writeFileSync(file, bytes.subarray(0, 5));
  assert.throws(() => readHfWeights(d), /model\.safetensors: not a safetensors file/);
  const broken = Buffer.from(bytes);
  broken.write('#', 8); // the header JSON's first byte
  writeFileSync(file, broken);
  assert.throws(() => readHfWeights(d), /model\.safetensors: safetensors header JSON is broken/);
  const huge = Buffer.from(bytes);
  huge.writeBigUInt64LE(1n << 40n, 0);
  writeFileSync(file, huge);
  assert.throws(() => readHfWeights(d), /not a safetensors file \(header length .* is implausible\)/);
});

test('a sharded index naming a missing shard, or a tensor its shard lacks', () => {
  const d = join(tmp(), 'sharded');
  cpSync(fixtureDir('bert-tiny-sharded'), d, { recursive: true });
  const index = join(d, 'model.safetensors.index.json');
  const idx = JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> };
  idx.weight_map['embeddings.extra'] = 'model-00001-of-00002.safetensors';
  writeFileSync(index, JSON.stringify(idx));
  assert.throws(
    () => readHfWeights(d),
    /model-00001-of-00002\.safetensors: the index puts 'embeddings\.extra' here, but the file lacks it/,
  );
  delete idx.weight_map['embeddings.extra'];
  writeFileSync(index, JSON.stringify(idx));
  rmSync(join(d, 'model-00002-of-00002.safetensors'));
  assert.throws(
    () => readHfWeights(d),
    /model\.safetensors\.index\.json: shard model-00002-of-00002\.safetensors \(\d+ tensors\) is missing/,
  );
});

test('a pickle that would run os.system is refused, in a ZIP archive and in the legacy layout; nothing runs', () => {
  const d = tmp();
  const marker = join(d, 'pwned');
  const zipped = join(d, 'zip');
  mkdirSync(zipped);
  writeFileSync(join(zipped, 'config.json'), '{"model_type": "bert"}');
  writeFileSync(
    join(zipped, 'pytorch_model.bin'),
    zipOf({ 'archive/data.pkl': osSystemPickle(marker), 'archive/version': Buffer.from('3\n') }),
  );
  assert.throws(
    () => loadEncoder(zipped),
    (e: Error) =>
      e instanceof UnsafePickleError &&
      e.message.startsWith(join(zipped, 'pytorch_model.bin')) &&
      e.message.includes("refused pickle global 'os.system'"),
  );
  const legacy = join(d, 'legacy.bin');
  writeFileSync(legacy, osSystemPickle(marker));
  assert.throws(() => readTorchStateDict(legacy), /legacy\.bin: refused pickle global 'os\.system'/);
  // STACK_GLOBAL (protocol 4) spelling of builtins.eval, and an opcode a state dict never uses.
  const stackGlobal = Buffer.concat([
    Buffer.from([0x80, 0x04, 0x8c, 8]),
    Buffer.from('builtins'),
    Buffer.from([0x8c, 4]),
    Buffer.from('eval'),
    Buffer.from([0x93, 0x2e]),
  ]);
  writeFileSync(legacy, stackGlobal);
  assert.throws(() => readTorchStateDict(legacy), /refused pickle global 'builtins\.eval'/);
  writeFileSync(legacy, Buffer.from([0x80, 0x02, 0x4e, 0x29, 0x81, 0x2e]));
  assert.throws(() => readTorchStateDict(legacy), /refused pickle opcode NEWOBJ \(0x81\) at byte 4/);
  assert.equal(existsSync(marker), false);
});

test('a corrupt pytorch_model.bin: a flipped byte fails the CRC check, a truncated one says so', () => {
  const d = join(tmp(), 'bin');
  cpSync(fixtureDir('bert-tiny-bin'), d, { recursive: true });
  const file = join(d, 'pytorch_model.bin');
  const bytes = readFileSync(file);
  const flipped = Buffer.from(bytes);
  flipped[bytes.length >> 1] ^= 0xff;
  writeFileSync(file, flipped);
  assert.throws(
    () => readHfWeights(d),
    /pytorch_model\.bin: corrupt archive: entry '.*' fails its CRC-32 check/,
  );
  writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
  assert.throws(() => readHfWeights(d), /pytorch_model\.bin: truncated or corrupt archive/);
  const legacy = join(tmp(), 'legacy');
  cpSync(fixtureDir('bert-tiny-bin-legacy'), legacy, { recursive: true });
  const lf = join(legacy, 'pytorch_model.bin');
  writeFileSync(lf, readFileSync(lf).subarray(0, 5000));
  assert.throws(() => readHfWeights(legacy), /pytorch_model\.bin: truncated/);
});

test('the legacy and ZIP readers give the same tensors as the safetensors file', () => {
  const st = loadHfWeights(fixtureDir('bert-tiny')).tensors;
  const zip = readTorchStateDict(join(fixtureDir('bert-tiny-bin'), 'pytorch_model.bin'));
  const legacy = readTorchStateDict(join(fixtureDir('bert-tiny-bin-legacy'), 'pytorch_model.bin'));
  const q = 'encoder.layer.0.attention.self.query.weight'; // non-contiguous in the legacy file
  assert.deepEqual([...(legacy.get(q)!.data as Float32Array)], [...(st.get(q)!.data as Float32Array)]);
  const w = st.get('embeddings.word_embeddings.weight')!;
  assert.deepEqual(
    zip.get('cls.predictions.decoder.weight')!.data,
    w.data,
    'tied tensor read from the shared storage',
  );
  const pos = zip.get('bert.embeddings.position_ids')!;
  assert.equal(pos.dtype, 'int64');
  assert.deepEqual(pos.shape, [1, 40]);
  assert.equal((pos.data as BigInt64Array)[39], 39n);
});

test('text longer than the position table: a clear error at run time and at build time', () => {
  const enc = loadEncoder(fixtureDir('bert-tiny')) as unknown as BertEncoder;
  assert.equal(enc.maxLength, 40);
  const long = (n: number) => ({
    dtype: 'int64' as const,
    shape: [1, n],
    data: new BigInt64Array(n).fill(5n),
  });
  enc.checkInputs({ input_ids: long(40) });
  assert.throws(
    () => enc.checkInputs({ input_ids: long(41) }),
    /bert-tiny\/config\.json: the text is 41 tokens long, longer than the position table allows \(max_position_embeddings 40: at most 40 tokens\)/,
  );
  assert.throws(
    () => enc.checkInputs({ input_ids: { ...long(3), data: BigInt64Array.from([1n, 100n, 2n]) } }),
    /input_ids holds 100, outside \[0, 100\) \(vocab_size 100\)/,
  );
  const rob = loadEncoder(fixtureDir('roberta-tiny')) as unknown as BertEncoder;
  assert.throws(
    () => rob.checkInputs({ input_ids: long(41) }),
    /positions start after pad_token_id 1: at most 40 tokens/,
  );
  const g = new Graph();
  const e = bertEncoder({
    model_type: 'bert',
    max_position_embeddings: 8,
    hidden_size: 8,
    num_attention_heads: 2,
    vocab_size: 10,
  });
  const ids = g.input('input_ids', 'int64', [1, 9]);
  assert.throws(
    () =>
      e.build(
        g,
        { input_ids: ids, attention_mask: g.input('attention_mask', 'int64', [1, 9]) },
        { training: false },
      ),
    /9 tokens do not fit the position table/,
  );
});
