/**
 * `lemer pretrain --corpus ... --encoder <folder> --out <folder>`: self-supervised (wav2vec
 * 2.0-style) training of a speech encoder on a corpus' audio, labels unused; writes a
 * Hugging Face-layout folder (config.json + model.safetensors + pretrain_log.json).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import {
  contextOf,
  corpusOptions,
  intOption,
  jsonOption,
  loadCorpusFromOptions,
  writeJsonResult,
  type CliIo,
  type CorpusCliOptions,
} from '../common.js';

interface PretrainCliOptions extends CorpusCliOptions {
  encoder: string;
  out: string;
  steps: number;
  batchSize: number;
  lr: number;
  warmup?: number;
  seed: number;
  maxSeconds: number;
  maskProb: number;
  maskLength?: number;
  negatives?: number;
  sessions?: string;
  threads?: number;
  json?: string;
}

const floatOption =
  (lo: number, hi = Infinity) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < lo || n > hi)
      throw new InvalidArgumentError(`expected a number in [${lo}, ${hi}].`);
    return n;
  };

async function pretrainCommand(cmd: Command, io: CliIo): Promise<void> {
  const ctx = contextOf(cmd, io);
  const opts = cmd.opts<PretrainCliOptions>();
  const { pretrainOnCorpus } = await import('../../pretrain/run.js');
  const { corpus: all } = await loadCorpusFromOptions(ctx, opts, { checkAudio: true });
  let corpus = all;
  if (opts.sessions !== undefined) {
    // Pretrain on some sessions only (a training fold's), so that test audio stays unseen.
    const keep = new Set(opts.sessions.split(',').map((s) => s.trim()));
    const unknown = [...keep].filter((s) => !all.utterances.some((u) => u.session === s));
    if (unknown.length)
      throw new Error(
        `--sessions: ${unknown.join(', ')} not in the corpus (sessions: ${[...new Set(all.utterances.map((u) => u.session))].join(', ')})`,
      );
    corpus = { ...all, utterances: all.utterances.filter((u) => keep.has(u.session)) };
  }
  const n = corpus.utterances.filter((u) => u.audioPath !== null).length;
  const lm = ctx.config.speech.logMel;
  if (lm.normalize === 'global')
    ctx.log.warn(
      "speech.logMel.normalize 'global' takes its statistics from a fold's training part (lemer cv with pretrain.enabled); this standalone run normalises each utterance instead",
    );
  const featBar = ctx.progress(n, 'log-mel');
  let stepBar: ReturnType<typeof ctx.progress> | null = null;
  const every = Math.max(1, Math.round(opts.steps / 20));
  try {
    const r = await pretrainOnCorpus(corpus, {
      encoderDir: opts.encoder,
      outDir: opts.out,
      steps: opts.steps,
      batchSize: opts.batchSize,
      lr: opts.lr,
      warmupSteps: opts.warmup,
      seed: opts.seed,
      maxSeconds: opts.maxSeconds,
      maskProb: opts.maskProb,
      maskLength: opts.maskLength,
      numNegatives: opts.negatives,
      sampleRate: ctx.config.speech.sampleRate,
      logMel: {
        frameLengthMs: lm.frameLengthMs,
        frameShiftMs: lm.frameShiftMs,
        allowEmptyFilters: lm.allowEmptyFilters,
        // 'global' statistics belong to a fold's training part: `lemer cv` (pretrain.enabled)
        // applies them; a standalone run has no fold, so it normalises each utterance.
        normalize: lm.normalize === 'global' ? 'utterance' : lm.normalize,
        stdFloor: lm.stdFloor,
      },
      runtime: opts.threads ? { threads: opts.threads } : undefined,
      onFeatures: (d) => featBar.update(d),
      onStep: (step, s) => {
        if (!stepBar) {
          featBar.stop();
          stepBar = ctx.progress(opts.steps, 'pretrain');
        }
        stepBar.update(step);
        if (step % every === 0 || step === opts.steps)
          ctx.log.info(
            `step ${step}: loss ${s.loss.toFixed(4)} (contrastive ${s.contrastive.toFixed(4)}, diversity ${s.diversity.toFixed(4)}, perplexity ${s.perplexity.toFixed(1)}), lr ${s.lr.toExponential(2)}`,
          );
      },
      onWarning: (m) => ctx.log.warn(m),
    });
    (stepBar as ReturnType<typeof ctx.progress> | null)?.stop();
    const first = r.log[0];
    const last = r.log[r.log.length - 1];
    ctx.print(
      [
        `pretrained ${r.modelType} for ${r.steps} steps on ${r.utterances} utterances${r.skipped ? ` (${r.skipped} too short, skipped)` : ''}`,
        `loss per masked frame: ${first.loss.toFixed(4)} -> ${last.loss.toFixed(4)} (codebook perplexity ${last.perplexity.toFixed(1)})`,
        `wrote ${r.outDir}: config.json, model.safetensors (${r.tensors} tensors), pretrain_log.json`,
      ].join('\n'),
    );
    writeJsonResult(opts.json, { ...r, first, last });
  } finally {
    featBar.stop();
  }
}

export function registerPretrain(program: Command, io: CliIo): void {
  const c = program
    .command('pretrain')
    .description(
      "self-supervised (wav2vec 2.0) pretraining of a speech encoder on a corpus' audio; writes a Hugging Face-layout folder",
    )
    .requiredOption(
      '--encoder <folder>',
      'encoder folder: config.json (+ model.safetensors to continue); a config.json of {"model_type": "lemer-conformer"} alone starts a log-mel conformer from scratch',
    )
    .requiredOption('--out <folder>', 'where to write config.json, model.safetensors and pretrain_log.json');
  corpusOptions(c)
    .option(
      '--sessions <list>',
      'only these sessions (comma-separated), e.g. a training fold, so test audio stays unseen',
    )
    .option('--steps <n>', 'updates', intOption(1), 1000)
    .option('--batch-size <n>', 'utterances per update', intOption(1), 8)
    .option('--lr <x>', 'peak learning rate (AdamW, linear warm-up and decay)', floatOption(0), 5e-4)
    .option('--warmup <n>', 'warm-up updates (default: a tenth of --steps)', intOption(0))
    .option('--seed <n>', 'seed of initialisation, batch order, masks and negatives', intOption(0), 0)
    .option('--max-seconds <s>', 'cut longer utterances to this', floatOption(0.2), 15)
    .option(
      '--mask-prob <p>',
      'share of encoder frames masked before span overlaps (wav2vec 2.0: 0.65)',
      floatOption(0, 1),
      0.65,
    )
    .option(
      '--mask-length <n>',
      "span length in encoder frames (default: 5 for the conformer's 40 ms frames, 10 for wav2vec2's 20 ms: 200 ms either way)",
      intOption(1),
    )
    .option(
      '--negatives <n>',
      "sampled negatives per masked frame (default: the config's num_negatives, 100)",
      intOption(1),
    )
    .option('--threads <n>', 'ONNX Runtime intra-op threads', intOption(1));
  jsonOption(c).action((_opts, cmd: Command) => pretrainCommand(cmd, io));
}
