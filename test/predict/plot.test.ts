import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envelope, mergeWordPieces, predictionSvg, segmentsSvg, writePlot } from '../../src/predict/plot.js';
import type { Prediction, SegmentPrediction } from '../../src/predict/lemer.js';
import { tone } from './helpers.js';

const pred: Prediction = {
  name: 'clip.wav',
  label: 'ang',
  probs: { ang: 0.7, hap: 0.1, sad: 0.05, neu: 0.15 },
  modality: 'speech+text',
  method: 'model',
  tokens: [
    { token: 'i', weight: 0.1 },
    { token: 'am', weight: -0.2 },
    { token: 'fur', weight: 0.8 },
    { token: '##ious', weight: 0.6 },
  ],
  frames: Array.from({ length: 25 }, (_, i) => ({ time: i * 0.04, weight: Math.sin(i / 4) })),
  audio: { seconds: 1, sampleRate: 16000, originalSampleRate: 16000, channels: 1 },
  warnings: [],
};

test('word pieces merge into words with the mean weight; the envelope keeps extremes', () => {
  assert.deepEqual(mergeWordPieces(pred.tokens!), [
    { token: 'i', weight: 0.1 },
    { token: 'am', weight: -0.2 },
    { token: 'furious', weight: 0.7 },
  ]);
  const e = envelope(Float32Array.of(0, 1, -1, 0.5), 4, 2);
  assert.deepEqual(e, [
    { t: 0, lo: 0, hi: 1 },
    { t: 0.5, lo: -1, hi: 0.5 },
  ]);
});

test('Figure 4: waveform, frame strip, coloured words and probabilities; SVG and PNG', async () => {
  const svg = await predictionSvg(pred, { samples: tone(200, 1), sampleRate: 16000 });
  for (const s of [
    'waveform',
    'label-frame attention',
    'label-token attention',
    'furious',
    'class probabilities',
    '70.0%',
    'clip.wav: ang',
  ])
    assert.ok(svg.includes(s), s);
  const dir = mkdtempSync(join(tmpdir(), 'lemer-plot-'));
  writePlot(join(dir, 'a.png'), svg);
  assert.deepEqual([...readFileSync(join(dir, 'a.png')).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  writePlot(join(dir, 'a.svg'), svg);
  assert.throws(() => writePlot(join(dir, 'a.jpg'), svg), /must end in \.svg or \.png/);
  const segs: SegmentPrediction[] = [
    { ...pred, start: 0.5, end: 2.1 },
    { ...pred, label: 'sad', probs: { ang: 0.1, hap: 0.1, sad: 0.6, neu: 0.2 }, start: 3, end: 4.2 },
  ];
  const tl = await segmentsSvg(segs, { seconds: 5 });
  assert.ok(tl.includes('2 speech segments') && tl.includes('sad 60%'));
  rmSync(dir, { recursive: true, force: true });
});
