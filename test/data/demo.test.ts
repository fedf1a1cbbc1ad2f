import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEMO_LABELS,
  DEMO_NAME,
  defaultDemoDir,
  loadDemoCorpus,
  planDemoCorpus,
} from '../../src/data/demo.js';

let hasEspeak = true;
try {
  createRequire(import.meta.url).resolve('espeak-ng');
} catch {
  hasEspeak = false;
}
const skip = hasEspeak ? false : 'optional dependency espeak-ng is not installed';

/** Minimal RIFF/WAVE reader for 16-bit PCM: enough to prove the files are real audio. */
function readWav(path: string): { sampleRate: number; samples: Int16Array } {
  const b = readFileSync(path);
  assert.equal(b.toString('ascii', 0, 4), 'RIFF', `${path}: not RIFF`);
  assert.equal(b.toString('ascii', 8, 12), 'WAVE', `${path}: not WAVE`);
  let off = 12;
  let sampleRate = 0;
  let bits = 0;
  let channels = 0;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === 'fmt ') {
      assert.equal(b.readUInt16LE(off + 8), 1, 'PCM format');
      channels = b.readUInt16LE(off + 10);
      sampleRate = b.readUInt32LE(off + 12);
      bits = b.readUInt16LE(off + 22);
    } else if (id === 'data') {
      assert.equal(bits, 16);
      assert.equal(channels, 1);
      const n = Math.min(size, b.length - off - 8) >> 1;
      const samples = new Int16Array(n);
      for (let i = 0; i < n; i++) samples[i] = b.readInt16LE(off + 8 + 2 * i);
      return { sampleRate, samples };
    }
    off += 8 + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('the plan is deterministic, balanced, and grouped into ordered dialogues', () => {
  const a = planDemoCorpus(12);
  assert.deepEqual(a, planDemoCorpus(12));
  assert.equal(a.length, 48);
  for (const l of DEMO_LABELS) assert.equal(a.filter((p) => p.label === l).length, 12);
  assert.equal(new Set(a.map((p) => p.speaker)).size, 6);
  assert.equal(new Set(a.map((p) => p.session)).size, 3);
  // Each speaker belongs to exactly one session (so speaker folds nest in session folds).
  for (const s of new Set(a.map((p) => p.speaker)))
    assert.equal(new Set(a.filter((p) => p.speaker === s).map((p) => p.session)).size, 1);
  const byDialogue = new Map<string, number[]>();
  for (const p of a) byDialogue.set(p.dialogue, [...(byDialogue.get(p.dialogue) ?? []), p.turn]);
  for (const [d, turns] of byDialogue)
    assert.deepEqual(
      turns,
      turns.map((_, i) => i),
      `turns of ${d}`,
    );
  assert.equal(new Set(a.map((p) => p.id)).size, a.length);
  // Some neutral-worded sentences are spoken under every class.
  for (const l of DEMO_LABELS)
    assert.ok(
      a.some((p) => p.label === l && p.sharedText),
      `shared text under ${l}`,
    );
});

test('default cache folder follows LEMER_CACHE', () => {
  assert.equal(defaultDemoDir({ LEMER_CACHE: '/x/cache' }), join('/x/cache', 'demo-v1'));
  assert.match(defaultDemoDir({}), /\.cache[\\/]lemer[\\/]demo-v1$/);
});

test(
  'generates a synthetic corpus once, with audio that carries the class, then reuses it',
  { skip },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'lemer-demo-'));
    try {
      const dir = join(root, 'demo');
      // A temp folder from a crashed run (its pid is gone) must be cleaned, never reused.
      const stale = `${dir}.tmp-999999-dead`;
      mkdirSync(stale);
      writeFileSync(join(stale, 'demo.json'), '{}');

      const progress: number[] = [];
      const corpus = await loadDemoCorpus({ dir, perClass: 4, onProgress: (d, t) => progress.push(d / t) });
      assert.equal(corpus.name, DEMO_NAME);
      assert.deepEqual(corpus.labels, [...DEMO_LABELS]);
      assert.equal(corpus.utterances.length, 16);
      for (const l of DEMO_LABELS) assert.equal(corpus.utterances.filter((u) => u.label === l).length, 4);
      assert.ok(new Set(corpus.utterances.map((u) => u.speaker)).size >= 4);
      assert.equal(progress.at(-1), 1);
      assert.ok(progress.length >= 16);
      assert.match(readFileSync(join(dir, 'README.txt'), 'utf8'), /SYNTHETIC/);
      assert.ok(!existsSync(stale), 'stale temp folder removed');
      assert.deepEqual(readdirSync(root), ['demo'], 'no temp folders left beside the corpus');

      const rms: Record<string, number[]> = {};
      const secsPerChar: Record<string, number[]> = {};
      for (const u of corpus.utterances) {
        assert.ok(u.audioPath && existsSync(u.audioPath), `${u.id}: audio exists`);
        const { sampleRate, samples } = readWav(u.audioPath);
        assert.equal(sampleRate, 22050);
        assert.ok(samples.length > sampleRate * 0.5, `${u.id}: at least half a second`);
        let peak = 0;
        let sq = 0;
        for (const s of samples) {
          peak = Math.max(peak, Math.abs(s));
          sq += s * s;
        }
        assert.ok(peak < 32767, `${u.id}: does not clip`);
        (rms[u.label] ??= []).push(Math.sqrt(sq / samples.length));
        (secsPerChar[u.label] ??= []).push(samples.length / sampleRate / u.text.length);
      }
      // Prosody: anger louder and faster than sadness, by a wide margin.
      assert.ok(mean(rms.ang) > 1.5 * mean(rms.sad), `RMS ang ${mean(rms.ang)} vs sad ${mean(rms.sad)}`);
      assert.ok(mean(secsPerChar.sad) > 1.2 * mean(secsPerChar.ang), `s/char sad vs ang`);
      assert.ok(mean(rms.hap) > mean(rms.sad));

      // Second load: from the cache, nothing synthesised or rewritten.
      const before = statSync(join(dir, 'manifest.jsonl')).mtimeMs;
      let calls = 0;
      const again = await loadDemoCorpus({ dir, onProgress: () => calls++ });
      assert.equal(calls, 0);
      assert.equal(statSync(join(dir, 'manifest.jsonl')).mtimeMs, before);
      assert.deepEqual(again.utterances, corpus.utterances);
      const same = await loadDemoCorpus({ dir, perClass: 4, onProgress: () => calls++ });
      assert.equal(calls, 0);
      assert.equal(same.utterances.length, 16);

      // Another size asked for explicitly: generated again, replacing the old one.
      const small = await loadDemoCorpus({ dir, perClass: 1 });
      assert.equal(small.utterances.length, 4);
      assert.equal(readdirSync(join(dir, 'wav')).length, 4);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);

test('refuses to generate into a folder that holds something else', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lemer-demo-'));
  try {
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    await assert.rejects(loadDemoCorpus({ dir, perClass: 1 }), /not a lemer demo corpus/);
    assert.ok(existsSync(join(dir, 'precious.txt')));
    await assert.rejects(loadDemoCorpus({ dir: join(dir, 'x'), perClass: 0 }), /perClass/);
    assert.ok(!existsSync(join(dir, 'x')), 'nothing is created for a refused perClass');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
