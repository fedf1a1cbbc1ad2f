import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { segmentAudio, type Segment } from '../../src/predict/segment.js';
import { SPEECH_WAV, speechUtterance, wavBytes } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-seg-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** Silence, the utterance, silence, the utterance, silence (22050 Hz); speech positions in seconds. */
async function recording(): Promise<{
  samples: Float32Array;
  rate: number;
  speech: [number, number][];
} | null> {
  const u = await speechUtterance();
  if (!u) return null;
  const rate = 22050;
  const gaps = [1.0, 1.5, 0.8];
  const parts: Float32Array[] = [];
  const speech: [number, number][] = [];
  let t = 0;
  for (let i = 0; i < gaps.length; i++) {
    parts.push(new Float32Array(Math.round(gaps[i] * rate)));
    t += gaps[i];
    if (i < 2) {
      parts.push(u);
      speech.push([t, t + u.length / rate]);
      t += u.length / rate;
    }
  }
  const samples = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    samples.set(p, o);
    o += p.length;
  }
  return { samples, rate, speech };
}

async function collect(it: AsyncIterable<Segment>): Promise<Segment[]> {
  const out: Segment[] = [];
  for await (const s of it) out.push(s);
  return out;
}

test('--segment finds the two utterances of a recording, with start and end times (streamed WAV, stereo, 22.05 kHz)', async (t) => {
  const rec = await recording();
  if (!rec) {
    t.skip(`shared EmoDB absent (${SPEECH_WAV})`);
    return;
  }
  const { samples, rate, speech } = rec;
  const stereo = new Float32Array(2 * samples.length);
  for (let i = 0; i < samples.length; i++) stereo[2 * i] = stereo[2 * i + 1] = samples[i];
  const path = join(tmp, 'long.wav');
  writeFileSync(path, wavBytes(stereo, rate, 2));
  const segs = await collect(segmentAudio(path, { chunkSeconds: 0.5 }));
  assert.equal(segs.length, 2, JSON.stringify(segs.map((s) => [s.start, s.end])));
  segs.forEach((s, i) => {
    // Within a few 96 ms frames of the true speech (pre-speech pad, redemption).
    assert.ok(
      Math.abs(s.start - speech[i][0]) < 0.35,
      `segment ${i} starts at ${s.start}, speech at ${speech[i][0]}`,
    );
    assert.ok(
      s.end > speech[i][1] - 0.2 && s.end < speech[i][1] + 0.6,
      `segment ${i} ends at ${s.end}, speech at ${speech[i][1]}`,
    );
    assert.equal(s.samples.length, Math.round((s.end - s.start) * 16000));
  });
  // Samples in memory give the same segments as the streamed file.
  const mem = await collect(segmentAudio({ samples, sampleRate: rate }));
  assert.deepEqual(
    mem.map((s) => [s.start, s.end]),
    segs.map((s) => [s.start, s.end]),
  );
});

test('--segment cuts speech longer than maxSegmentSeconds; silence gives no segment', async (t) => {
  const rec = await recording();
  if (!rec) {
    t.skip(`shared EmoDB absent (${SPEECH_WAV})`);
    return;
  }
  const { samples, rate } = rec;
  const segs = await collect(segmentAudio({ samples, sampleRate: rate }, { maxSegmentSeconds: 0.5 }));
  assert.ok(segs.length >= 4, `${segs.length} segments`);
  for (const s of segs) assert.ok(s.end - s.start <= 0.5 + 0.1);
  const none = await collect(segmentAudio({ samples: new Float32Array(16000 * 3), sampleRate: 16000 }));
  assert.equal(none.length, 0);
});

test('Lemer.predictSegments: one prediction per segment with its times; speech alone without a transcriber', async (t) => {
  const { Lemer } = await import('../../src/predict/lemer.js');
  const { exportedTinyModel } = await import('./helpers.js');
  const { dir } = await exportedTinyModel();
  const model = await Lemer.load(dir);
  const rec = await recording();
  if (!rec) {
    t.skip(`shared EmoDB absent (${SPEECH_WAV})`);
    return;
  }
  const { samples, rate, speech } = rec;
  const preds = [];
  for await (const p of model.predictSegments({ samples, sampleRate: rate }, { name: 'rec' })) preds.push(p);
  assert.equal(preds.length, 2);
  assert.equal(preds[0].name, 'rec#0');
  assert.equal(preds[1].modality, 'speech');
  assert.ok(Math.abs(preds[1].start - speech[1][0]) < 0.35);
  assert.ok(preds[1].frames!.length > 0);
  await model.release();
});
