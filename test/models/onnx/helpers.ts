// Writes a lemer encoder as a transformers.js-style ONNX folder (config.json, onnx/model.onnx):
// the inference graph with the Hugging Face input and output names, weights inlined.
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toOnnx } from '../../../src/graph/onnx.js';
import { Predictor } from '../../../src/graph/train.js';
import { inlineParams, markInt8, quantizeMatMulsInt8 } from '../../../src/predict/graph-passes.js';
import type { Encoder } from '../../../src/models/encoder.js';

export function encoderOnnxBytes(enc: Encoder, opts: { quantize?: boolean } = {}): Uint8Array {
  const g = Predictor.buildGraph({
    inputs: enc.inputs,
    build: (gr, i) => ({ last_hidden_state: enc.build(gr, i, { training: false }).hidden }),
    ortContribOps: false,
  });
  if (!enc.weights) throw new Error('encoderOnnxBytes: the encoder has no weights');
  inlineParams(g, (n) => enc.weights!.get(n));
  if (!opts.quantize) return toOnnx(g);
  const q = quantizeMatMulsInt8(g, { minValues: 1 });
  return markInt8(toOnnx(g), q.int8Initializers);
}

/** `dir`/onnx/<file> from the encoder; config.json (and the rest) copied from `from` when given. */
export function writeOnnxFolder(
  enc: Encoder,
  dir: string,
  opts: { from?: string; file?: string; quantize?: boolean; config?: Record<string, unknown> } = {},
): string {
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  if (opts.from) cpSync(opts.from, dir, { recursive: true });
  if (opts.config) writeFileSync(join(dir, 'config.json'), JSON.stringify(opts.config));
  const file = join(dir, 'onnx', opts.file ?? 'model.onnx');
  writeFileSync(file, encoderOnnxBytes(enc, opts));
  return file;
}
