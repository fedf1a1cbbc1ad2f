/** `lemer encoder check <folder>`: load a Hugging Face encoder folder, run it once, compare with its ONNX export. */
import { InvalidArgumentError, type Command } from 'commander';
import { contextOf, intOption, jsonOption, writeJsonResult, type CliIo } from '../common.js';

interface CheckOptions {
  onnx?: string;
  compare?: boolean;
  tolerance?: number;
  threads?: number;
  json?: string;
}

async function checkCommand(folder: string, cmd: Command, io: CliIo): Promise<void> {
  const ctx = contextOf(cmd, io);
  const opts = cmd.opts<CheckOptions>();
  const { checkEncoderFolder, formatEncoderCheck } = await import('../../models/hf/check.js');
  const r = await checkEncoderFolder(folder, {
    onnx: opts.onnx,
    noOnnx: opts.compare === false,
    threads: opts.threads,
  });
  ctx.print(formatEncoderCheck(r, opts.tolerance));
  writeJsonResult(opts.json, r);
  if (!r.output.finite) throw new Error(`${folder}: the forward pass gave non-finite values`);
  if (opts.tolerance !== undefined && r.onnx && !(r.onnx.maxAbsDiff <= opts.tolerance))
    throw new Error(
      `${r.onnx.file}: lemer and ONNX Runtime differ by ${r.onnx.maxAbsDiff}, above --tolerance ${opts.tolerance}`,
    );
}

function floatOption(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('expected a number >= 0.');
  return n;
}

export function registerEncoder(program: Command, io: CliIo): void {
  const enc = program
    .command('encoder')
    .description('Hugging Face encoder folders (BERT, RoBERTa, the wav2vec2 family, ...)');
  jsonOption(
    enc
      .command('check')
      .description(
        'load a local Hugging Face folder, print architecture, parameter count and dtype, run one forward on a built-in input; with an ONNX export beside it (onnx/model.onnx), print the largest difference from ONNX Runtime',
      )
      .argument(
        '<folder>',
        'a Hugging Face model folder (config.json + model.safetensors, shards or pytorch_model.bin)',
      )
      .option(
        '--onnx <variant>',
        'the ONNX export to compare: fp32, fp16, quantized, ... or a file name in onnx/',
      )
      .option('--no-compare', 'skip the ONNX comparison')
      .option('--tolerance <x>', 'fail when lemer and ONNX Runtime differ by more than this', floatOption)
      .option('--threads <n>', 'ONNX Runtime threads', intOption(1)),
  ).action((folder: string, _o: unknown, cmd: Command) => checkCommand(folder, cmd, io));
}
