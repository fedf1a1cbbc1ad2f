/**
 * A tiny LE-MER-shaped model trained in the test itself with the engine's Trainer on a
 * handful of synthetic utterances (a low or high tone with a matching word), then exported:
 * tests of export, load and predict do not depend on `lemer cv`.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeAudioFile } from '../../src/audio/decode.js';
import { resample } from '../../src/audio/resample.js';
import { encodeWav } from '../audio/helpers.js';
import { cmvn, logMel } from '../../src/audio/logmel.js';
import type { Graph, Tensor } from '../../src/graph/graph.js';
import * as ops from '../../src/graph/ops/index.js';
import { linear } from '../../src/graph/layers/linear.js';
import { cosineSimilarity, maskedMax } from '../../src/graph/layers/pooling.js';
import { accuracy, crossEntropy } from '../../src/graph/layers/losses.js';
import { Trainer, type BuildContext, type InputDecl } from '../../src/graph/train.js';
import { tokenizerFromJson } from '../../src/text/tokenizer.js';
import { buildWordPieceVocab } from '../../src/text/vocab.js';
import { createEncoder } from '../../src/models/encoders.js';
import { conformerEncoder } from '../../src/models/conformer/index.js';
import { makeBatch, type Example } from '../../src/train/data.js';
import { writeModelFolder, type ExportResult } from '../../src/predict/export.js';
import type { FrontEndSpec } from '../../src/predict/folder.js';

export const LABELS = ['low', 'high'];
export const FRONT_END: FrontEndSpec = {
  kind: 'logmel',
  sampleRate: 16000,
  logMel: { numBins: 80, frameLengthMs: 25, frameShiftMs: 10, normalize: 'utterance' },
};

/** A tone of `hz` with a little noise, `seconds` long at `rate`. */
export function tone(hz: number, seconds: number, rate = 16000, seed = 1): Float32Array {
  const n = Math.round(seconds * rate);
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    x[i] = 0.3 * Math.sin((2 * Math.PI * hz * i) / rate) + 0.01 * (s / 2 ** 32 - 0.5);
  }
  return x;
}

/** A 16-bit PCM WAV file's bytes. */
export function wavBytes(samples: Float32Array, rate: number, channels = 1): Uint8Array {
  const frames = samples.length / channels;
  const chans = Array.from({ length: channels }, (_, c) =>
    Float32Array.from({ length: frames }, (_, i) => samples[i * channels + c]),
  );
  return encodeWav(chans, rate, 'pcm16');
}

const TEXTS = ['the low hum', 'a deep low sound', 'the high whistle', 'a bright high sound'];

export function tinyModel(vocabSize: number) {
  const text = createEncoder('bert', {
    vocab_size: vocabSize,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    max_position_embeddings: 32,
  });
  const speech = conformerEncoder({
    num_mel_bins: 80,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    conv_depthwise_kernel_size: 3,
  });
  const inputs: Record<string, InputDecl> = {};
  for (const [k, d] of Object.entries(text.inputs)) inputs[`text.${k}`] = d;
  inputs['text.label_mask'] = { dtype: 'int64', shape: ['batch', 'tokens'] };
  for (const [k, d] of Object.entries(speech.inputs)) inputs[`speech.${k}`] = d;
  const forward = (g: Graph, i: Record<string, Tensor>, ctx: BuildContext) => {
    const t = g.scope('text_encoder', () =>
      text.build(
        g,
        {
          input_ids: i['text.input_ids'],
          attention_mask: i['text.attention_mask'],
          token_type_ids: i['text.token_type_ids'],
        },
        { training: ctx.training },
      ),
    );
    const s = g.scope('speech_encoder', () =>
      speech.build(
        g,
        { input_features: i['speech.input_features'], attention_mask: i['speech.attention_mask'] },
        { training: ctx.training },
      ),
    );
    return g.scope('head', () => {
      const lt = g.param('label_embeddings.text', [2, 16], { init: { kind: 'normal', std: 0.5 } });
      const ls = g.param('label_embeddings.speech', [2, 16], { init: { kind: 'normal', std: 0.5 } });
      const v = ops.concat([maskedMax(t.hidden, t.mask), maskedMax(s.hidden, s.mask)], -1);
      const logits = linear(v, 'classifier', 2);
      return { logits, gt: cosineSimilarity(t.hidden, lt), gs: cosineSimilarity(s.hidden, ls), t, s };
    });
  };
  return {
    inputs,
    trainInputs: { ...inputs, labels: { dtype: 'int64', shape: ['batch'] } } as Record<string, InputDecl>,
    infer: (g: Graph, i: Record<string, Tensor>, ctx: BuildContext) => {
      const o = forward(g, i, ctx);
      return {
        logits: o.logits,
        probs: o.logits.softmax(-1),
        text_label_attention: o.gt,
        speech_label_attention: o.gs,
        text_mask: o.t.mask,
        speech_mask: o.s.mask,
      };
    },
    train: (g: Graph, i: Record<string, Tensor>, ctx: BuildContext) => {
      const o = forward(g, i, ctx);
      return { loss: crossEntropy(o.logits, i.labels), metrics: { accuracy: accuracy(o.logits, i.labels) } };
    },
  };
}

let cached: Promise<ExportResult> | null = null;

/** Trains the tiny model for a few steps and exports it (once per test process). */
export function exportedTinyModel(opts: { quantize?: boolean } = {}): Promise<ExportResult> {
  if (!cached || opts.quantize) {
    const p = (async () => {
      const vocab = buildWordPieceVocab(
        TEXTS.flatMap((t) => [t, t]),
        { vocabSize: 200, minFrequency: 1 },
      );
      const tok = tokenizerFromJson(vocab);
      const model = tinyModel(tok.vocabSize);
      const examples: Example[] = TEXTS.map((t, k) => {
        const f = cmvn(logMel(tone(k < 2 ? 200 : 2000, 0.6 + 0.1 * k), { numBins: 80 }));
        return {
          index: k,
          id: `u${k}`,
          label: k < 2 ? 0 : 1,
          text: tok.encode(t, { maxLength: 32 }),
          speech: f,
        };
      });
      const trainer = await Trainer.create({
        inputs: model.trainInputs,
        build: model.train,
        optimizer: { kind: 'adam', lr: 3e-3 },
        seed: 7,
      });
      const feeds = makeBatch(examples, {
        decls: model.trainInputs,
        labelScope: 'context',
        padId: tok.padId,
      });
      for (let s = 0; s < 5; s++) await trainer.step(feeds);
      const params = new Map([...trainer.params.entries()]);
      await trainer.release();
      const out = join(mkdtempSync(join(tmpdir(), 'lemer-predict-')), 'model');
      return writeModelFolder(
        {
          kind: 'lemer',
          labels: LABELS,
          model,
          params,
          tokenizer: vocab,
          text: { maxTokens: 32, history: 0, labelScope: 'context' },
          speech: FRONT_END,
          labelTemperature: 1,
          config: { note: 'test model' },
          source: 'test/predict/helpers.ts',
          description: 'tiny test model',
        },
        out,
        { quantize: opts.quantize ? 'int8' : null, int8MinValues: 64 },
      );
    })();
    if (opts.quantize) return p;
    cached = p;
  }
  return cached;
}

/**
 * Real speech for the voice-activity tests: an EmoDB recording from the shared data (the
 * project ships no corpus audio), resampled to 22.05 kHz so that the tests also cover an odd
 * rate. null where the shared data is absent (the caller skips).
 */
export const SPEECH_WAV = resolve('../shared/data/emodb/wav/03a01Fa.wav');
export async function speechUtterance(): Promise<Float32Array | null> {
  if (!existsSync(SPEECH_WAV)) return null;
  return resample((await decodeAudioFile(SPEECH_WAV)).channels[0], 16000, 22050);
}
