// Prediction benchmark: utterances per second for batch prediction of 5 s clips with a
// 150-token transcript (context + utterance), LE-MER on BERT-base + wav2vec2-base (random
// weights: speed does not depend on them), fp32 and int8 model folders, against PyTorch's
// forward of the same two encoders in the same run; and the real-time factor of --segment
// on a long recording.
//   npm run bench -- predict [--n 8] [--batch 4] [--long 60] [--no-torch] [--threads 2]
// predict_ratio = PyTorch time / lemer time (> 1: lemer faster); PyTorch runs before and after
// lemer and its mean rate counts (the shared machine's load drifts). The physical limit for 5 s
// clips with these encoders on 2 cores is about 3-4 utterances/s in fp32 (~95 GFLOP each):
// physical_limit_share is lemer's fp32 rate over 3.5/s.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAudioFile } from '../src/audio/decode.js';
import { resample } from '../src/audio/resample.js';
import { defaultConfig } from '../src/config/load.js';
import { Predictor } from '../src/graph/train.js';
import { ParameterStore } from '../src/graph/params.js';
import { createEncoder } from '../src/models/encoders.js';
import { headConfigFrom, lemerModel } from '../src/models/lemer/index.js';
import { writeModelFolder } from '../src/predict/export.js';
import { Lemer, type PredictInput } from '../src/predict/lemer.js';
import { segmentAudio } from '../src/predict/segment.js';
import { buildWordPieceVocab } from '../src/text/vocab.js';
import { benchDir, benchEnv, type Json } from './lib/spawn.js';
import { wav16 } from './lib/wav.js';

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const LABELS = ['ang', 'hap', 'sad', 'neu'];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function words(n: number, r: () => number): string {
  return Array.from({ length: n }, () =>
    Array.from({ length: 3 + Math.floor(r() * 5) }, () =>
      String.fromCharCode(97 + Math.floor(r() * 26)),
    ).join(''),
  ).join(' ');
}

function python(): string | null {
  for (const p of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return p;
  }
  return null;
}

export default async function predict(argv: string[]): Promise<Json> {
  const val = (n: string, d: number) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
  const N = val('--n', 8);
  const B = val('--batch', 4);
  const longSeconds = val('--long', 60);
  const threads = val('--threads', Math.min(2, cpus().length));
  const work = mkdtempSync(join(tmpdir(), 'lemer-bench-predict-'));
  const out: Json = { clips_seconds: 5, tokens: 150, utterances: N, batch: B, threads };
  // The machine is shared: rates mean little without the load they were taken under.
  const load = (): number[] => loadavg().map((x) => round(x, 2));
  out.load_average = { start: load() };
  try {
    // The model: BERT-base + wav2vec2-base (Hugging Face base configs), the LE-MER head.
    const r = rng(1);
    const texts = Array.from({ length: 40 }, () => words(30, r));
    const vocab = buildWordPieceVocab(texts, { vocabSize: 4000, minFrequency: 1 });
    const t0 = performance.now();
    const textEncoder = createEncoder('bert', {});
    const speechEncoder = createEncoder('wav2vec2', {}, { freezeFeatureEncoder: true });
    out.encoders = { text: textEncoder.source, speech: speechEncoder.source };
    const cfg = defaultConfig();
    const model = lemerModel({
      kind: 'lemer',
      textEncoder,
      speechEncoder,
      numClasses: 4,
      head: headConfigFrom(cfg),
      useLabelEmbeddings: true,
      labelScope: 'context',
    });
    const g = Predictor.buildGraph({ inputs: model.inputs, build: model.infer, ortContribOps: false });
    const params = new ParameterStore();
    params.initMissing(g, 1);
    const dir = join(work, 'model');
    process.stderr.write('predict bench: exporting the base-size model (fp32 + int8)\n');
    const exp = writeModelFolder(
      {
        kind: 'lemer',
        labels: LABELS,
        model,
        params: { get: (n) => (params.has(n) ? params.get(n) : undefined), entries: () => params.entries() },
        tokenizer: vocab,
        text: { maxTokens: 150, history: 10, labelScope: 'context' },
        speech: { kind: 'waveform', sampleRate: 16000 },
        labelTemperature: 1,
        config: cfg,
        source: 'bench (random weights)',
        description: 'BERT-base + wav2vec2-base, LE-MER head, random weights',
      },
      dir,
      { quantize: 'int8' },
    );
    out.export_seconds = round((performance.now() - t0) / 1000, 1);
    out.model_mb = round(exp.files['model.onnx'] / 1e6, 1);
    out.int8_model_mb = round(exp.files['model.int8.onnx'] / 1e6, 1);
    out.int8_matmuls = exp.int8?.matmuls;
    // N clips of 5 s (noise shaped by a slow envelope), each with a 150-token transcript.
    const inputs: PredictInput[] = Array.from({ length: N }, (_, i) => {
      const x = new Float32Array(80000);
      for (let k = 0; k < x.length; k++) x[k] = 0.1 * (r() - 0.5) * (1 + Math.sin(k / 800 + i));
      return {
        audio: { samples: x, sampleRate: 16000 },
        text: words(25, r),
        context: [words(60, r), words(60, r)],
        name: `clip${i}`,
      };
    });
    const rate = async (int8: boolean) => {
      const m = await Lemer.load(dir, { int8, threads });
      await m.predictBatch(inputs.slice(0, B), { batchSize: B }); // warm-up
      const t = performance.now();
      const preds = await m.predictBatch(inputs, { batchSize: B });
      const s = (performance.now() - t) / 1000;
      await m.release();
      return { ups: N / s, preds };
    };
    // PyTorch: the forward of the same two encoders on the same batch shapes. The machine is
    // shared and its load drifts: PyTorch runs right before and right after lemer (fp32, then
    // int8), and the ratios use the mean of its two rates.
    const py = argv.includes('--no-torch') ? null : python();
    const torchRun = (when: string): Json => {
      process.stderr.write(`predict bench: PyTorch (${when})\n`);
      const tr = spawnSync(
        py!,
        [
          join(benchDir, 'predict_torch.py'),
          '--batch',
          String(B),
          '--tokens',
          '150',
          '--samples',
          '80000',
          '--repeats',
          String(Math.max(2, Math.ceil(N / B))),
        ],
        { env: { ...benchEnv, OMP_NUM_THREADS: String(threads) }, encoding: 'utf8' },
      );
      if (tr.status !== 0) return { error: tr.stderr.slice(-500) };
      return { ...(JSON.parse(tr.stdout.trim().split('\n').pop()!) as Json), load_average: load() };
    };
    const torchBefore = py ? torchRun('before lemer') : null;
    process.stderr.write('predict bench: fp32\n');
    const f = await rate(false);
    (out.load_average as Json).after_fp32 = load();
    process.stderr.write('predict bench: int8\n');
    const q = await rate(true);
    (out.load_average as Json).after_int8 = load();
    const torchAfter = py ? torchRun('after lemer') : null;
    out.fp32_utterances_per_second = round(f.ups);
    out.int8_utterances_per_second = round(q.ups);
    out.int8_speedup = round(q.ups / f.ups, 2);
    out.int8_same_label = round(f.preds.filter((p, i) => p.label === q.preds[i].label).length / N, 3);
    out.int8_max_prob_change = round(
      Math.max(...f.preds.flatMap((p, i) => LABELS.map((l) => Math.abs(p.probs[l] - q.preds[i].probs[l])))),
      4,
    );
    process.stderr.write(`predict bench: ${JSON.stringify(out)}\n`);
    out.physical_limit_utterances_per_second = 3.5;
    out.physical_limit_share = round(f.ups / 3.5, 3);
    if (torchBefore && torchAfter && !torchBefore.error && !torchAfter.error) {
      const ups = (torchBefore.utterances_per_second + torchAfter.utterances_per_second) / 2;
      out.torch = { before: torchBefore, after: torchAfter };
      out.torch_utterances_per_second = round(ups);
      out.predict_ratio = round(f.ups / ups, 3);
      out.predict_ratio_int8 = round(q.ups / ups, 3);
    } else out.torch = py ? { before: torchBefore, after: torchAfter } : null;
    process.stderr.write(`predict bench: torch ${JSON.stringify(out.torch)}\n`);
    (out.load_average as Json).after_speed = load();
    // --segment on a long recording: a real EmoDB utterance (the shared data; lemer ships no
    // corpus audio) every ~3.1 s, as a 22.05 kHz WAV, streamed.
    const speechWav = join(benchDir, '..', '..', 'shared', 'data', 'emodb', 'wav', '03a01Fa.wav');
    if (!existsSync(speechWav)) {
      out.segment = { skipped: `${speechWav} not found (the shared EmoDB data)` };
      return out;
    }
    const u = await resample((await decodeAudioFile(speechWav)).channels[0], 16000, 22050);
    const lr = 22050;
    const long = new Float32Array(longSeconds * lr);
    for (let t = lr; t + u.length < long.length; t += Math.round(3.1 * lr)) long.set(u, t);
    const longPath = join(work, 'long.wav');
    writeFileSync(longPath, wav16(long, lr));
    let t = performance.now();
    let nseg = 0;
    for await (const s of segmentAudio(longPath)) nseg += s.samples.length > 0 ? 1 : 0;
    const vadSeconds = (performance.now() - t) / 1000;
    const m = await Lemer.load(dir, { threads });
    t = performance.now();
    let npred = 0;
    for await (const p of m.predictSegments(longPath)) npred += p.label ? 1 : 0;
    const segSeconds = (performance.now() - t) / 1000;
    await m.release();
    out.segment = {
      recording_seconds: longSeconds,
      segments: nseg,
      vad_real_time_factor: round(vadSeconds / longSeconds, 4),
      predict_real_time_factor: round(segSeconds / longSeconds, 4),
      predicted: npred,
      note: 'predict: each segment through the speech-only graph (no transcript); RTF = processing seconds / audio seconds',
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
