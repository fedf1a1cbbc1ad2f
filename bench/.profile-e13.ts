// temporary profiling script (issue 13 helper; not committed)
import { existsSync, readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { defaultConfig } from '../src/config/load.js';
import { Predictor } from '../src/graph/train.js';
import { ParameterStore } from '../src/graph/params.js';
import { createEncoder } from '../src/models/encoders.js';
import { headConfigFrom, lemerModel } from '../src/models/lemer/index.js';
import { writeModelFolder } from '../src/predict/export.js';
import { buildWordPieceVocab } from '../src/text/vocab.js';

const dir = '/tmp/e13/base-model';
if (!existsSync(dir)) {
  const texts = Array.from({ length: 40 }, (_, i) => `word${i} alpha beta gamma delta${i % 7}`);
  const vocab = buildWordPieceVocab(texts, { vocabSize: 4000, minFrequency: 1 });
  const textEncoder = createEncoder('bert', {});
  const speechEncoder = createEncoder('wav2vec2', {}, { freezeFeatureEncoder: true });
  const cfg = defaultConfig();
  const model = lemerModel({ kind: 'lemer', textEncoder, speechEncoder, numClasses: 4, head: headConfigFrom(cfg), useLabelEmbeddings: true, labelScope: 'context' });
  const g = Predictor.buildGraph({ inputs: model.inputs, build: model.infer, ortContribOps: false });
  const params = new ParameterStore();
  params.initMissing(g, 1);
  writeModelFolder({ kind: 'lemer', labels: ['a', 'b', 'c', 'd'], model, params: { get: (n) => (params.has(n) ? params.get(n) : undefined), entries: () => params.entries() }, tokenizer: vocab, text: { maxTokens: 150, history: 10, labelScope: 'context' }, speech: { kind: 'waveform', sampleRate: 16000 }, labelTemperature: 1, config: cfg, source: 'profile', description: 'base' }, dir, { quantize: 'int8' });
}
const file = process.argv[2] ?? 'model.onnx';
const B = 4, T = 150, S = 80000;
const opt = (process.env.OPT ?? 'all') as 'all';
const so: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: opt, intraOpNumThreads: 2, interOpNumThreads: 1, enableProfiling: !!process.env.PROF, profileFilePrefix: '/tmp/e13/prof', logSeverityLevel: 3, ...(process.env.SAVE ? { optimizedModelFilePath: process.env.SAVE } : {}), enableMemPattern: process.env.MEMPAT === '1' };
const s = await ort.InferenceSession.create(`${dir}/${file}`, so);
const m = JSON.parse(readFileSync(`${dir}/lemer-model.json`, 'utf8'));
const feeds: Record<string, ort.Tensor> = {};
for (const [n, spec] of Object.entries(m.inputs) as [string, { dtype: string }][]) {
  if (n === 'speech.input_values') feeds[n] = new ort.Tensor('float32', Float32Array.from({ length: B * S }, (_, i) => Math.sin(i / 7) * 0.1), [B, S]);
  else if (n === 'speech.attention_mask') feeds[n] = new ort.Tensor('int64', new BigInt64Array(B * S).fill(1n), [B, S]);
  else if (spec.dtype === 'int64') feeds[n] = new ort.Tensor('int64', BigInt64Array.from({ length: B * T }, (_, i) => (n.endsWith('input_ids') ? BigInt(5 + (i % 50)) : n.endsWith('type_ids') ? 0n : 1n)), [B, T]);
}
const fetch = ['probs', 'text_label_attention', 'speech_label_attention', 'text_mask', 'speech_mask'].filter((n) => s.outputNames.includes(n));
await s.run(feeds, fetch);
const reps = Number(process.env.REPS ?? 2);
const t0 = performance.now();
for (let r = 0; r < reps; r++) await s.run(feeds, fetch);
const sec = (performance.now() - t0) / 1000 / reps;
console.log(JSON.stringify({ file, opt, seconds_per_batch: sec, ups: B / sec }));
if (process.env.PROF) { const f = s.endProfiling(); console.log('profile', f); }
await s.release();
