/**
 * `lemer predict <audio...>`: classifies recordings with an exported model folder; a line
 * per file on stdout, JSON Lines with --json, Figure 4 with --plot, speech segments of long
 * recordings with --segment, transcripts from a local Whisper folder with --asr.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { Command } from 'commander';
import { whisperTranscriber, type Transcriber } from '../../predict/asr.js';
import { modelDirOrDemo } from '../../predict/demo-model.js';
import { prepareAudio } from '../../predict/input.js';
import { Lemer, type Prediction, type SegmentPrediction } from '../../predict/lemer.js';
import { predictionSvg, segmentsSvg, writePlot } from '../../predict/plot.js';
import { writeFileAtomic } from '../../util/fs.js';
import { contextOf, intOption, type CliIo } from '../common.js';

interface PredictCliOptions {
  text?: string;
  textFile?: string;
  context: string[];
  model?: string;
  json?: string;
  plot?: string;
  segment?: boolean;
  asr?: string;
  asrLanguage?: string;
  int8?: boolean;
  batchSize: number;
  maxSegment?: number;
  pause?: number;
  threads?: number;
}

/** One result line: `clip.wav: ang 62.0% (hap 8.0%, ...) [speech+text]`. */
export function formatPrediction(p: Prediction | SegmentPrediction): string {
  const others = Object.entries(p.probs)
    .filter(([l]) => l !== p.label)
    .map(([l, v]) => `${l} ${(100 * v).toFixed(1)}%`)
    .join(', ');
  const when = 'start' in p ? ` ${p.start.toFixed(2)}-${p.end.toFixed(2)} s` : '';
  const how = p.method === 'model' ? p.modality : `${p.modality} alone`;
  const tr = p.transcript && p.transcript.source !== 'given' ? ` "${p.transcript.text}"` : '';
  return `${p.name ?? 'input'}${when}: ${p.label} ${(100 * p.probs[p.label]).toFixed(1)}% (${others}) [${how}]${tr}`;
}

function jsonLines(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
}

export function registerPredict(program: Command, io: CliIo): void {
  program
    .command('predict')
    .description('classify the emotion of recordings (with their transcripts) with an exported model folder')
    .argument('<audio...>', 'WAV or FLAC files')
    .option(
      '--model <dir>',
      'model folder written by `lemer export` (default $LEMER_MODEL, else the demo model, trained on first use)',
    )
    .option('--text <text>', 'the transcript (with one audio file)')
    .option('--text-file <file>', 'the transcript, read from a UTF-8 file (with one audio file)')
    .option(
      '--context <text>',
      'a previous utterance of the dialogue, oldest first (repeatable)',
      (v: string, a: string[]) => [...a, v],
      [] as string[],
    )
    .option(
      '--asr <dir>',
      'transcribe audio that has no --text with this local Whisper ONNX folder (transformers.js layout)',
    )
    .option('--asr-language <name>', 'spoken language for --asr (default: Whisper detects it)')
    .option('--segment', 'split long recordings at pauses (Silero VAD) and classify each speech segment')
    .option('--max-segment <seconds>', '--segment: cut speech longer than this (default 20)', Number)
    .option('--pause <ms>', '--segment: silence that ends a segment (default 300)', Number)
    .option('--int8', "run the model folder's int8 graph (export --quantize int8)")
    .option('--batch-size <n>', 'utterances per run for many files (batched by length)', intOption(1), 8)
    .option('--threads <n>', 'ONNX Runtime threads (default: one per core)', intOption(1))
    .option(
      '--json <file>',
      'write the predictions as JSON Lines, one object per file or segment (atomically)',
    )
    .option('--plot <file>', 'draw the prediction (Figure 4; with --segment the timeline) as .svg or .png')
    .action(async (files: string[], _opts, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const o = cmd.opts<PredictCliOptions>();
      // No --model: the demo model (trained on the demo corpus on first use, then cached).
      const dir = await modelDirOrDemo(o.model, {
        log: (m) => ctx.log.info(m),
        warn: (m) => ctx.log.warn(m),
        progress: ctx.progress,
      });
      if (o.text !== undefined && o.textFile !== undefined)
        throw new Error('give --text or --text-file, not both');
      const text = o.textFile !== undefined ? readFileSync(o.textFile) : o.text;
      if (text !== undefined && files.length > 1)
        throw new Error(
          `--text applies to one audio file; ${files.length} were given (predict them one at a time, or use the library's predictBatch)`,
        );
      if (text !== undefined && o.segment)
        throw new Error(
          '--segment with --text: every segment needs its own transcript; use --asr <whisper folder> instead',
        );
      if (o.plot && files.length > 1) throw new Error('--plot draws one file; give one audio file');
      if (o.plot && !['.svg', '.png'].includes(extname(o.plot).toLowerCase()))
        throw new Error(`--plot ${o.plot}: the file name must end in .svg or .png`);
      let transcriber: Transcriber | undefined;
      if (o.asr) {
        ctx.log.info(`loading the transcriber from ${o.asr}`);
        transcriber = await whisperTranscriber(o.asr, { language: o.asrLanguage });
      }
      const model = await Lemer.load(dir, { int8: o.int8, threads: o.threads, transcriber });
      ctx.log.debug(`loaded ${dir} (${model.kind}, ${model.labels.join(', ')}, ${model.graphFile})`);
      const rows: (Prediction | SegmentPrediction)[] = [];
      try {
        if (o.segment) {
          for (const f of files) {
            const segs: SegmentPrediction[] = [];
            for await (const s of model.predictSegments(f, {
              name: f,
              maxSegmentSeconds: o.maxSegment,
              redemptionMs: o.pause,
            })) {
              ctx.print(formatPrediction(s));
              segs.push(s);
            }
            if (segs.length === 0) ctx.log.warn(`${f}: no speech found`);
            rows.push(...segs);
            if (o.plot)
              writePlot(o.plot, await segmentsSvg(segs, { title: `${f}: ${segs.length} speech segments` }));
          }
        } else if (files.length === 1) {
          const p = await model.predict({ audio: files[0], text, context: o.context, name: files[0] });
          rows.push(p);
          ctx.print(formatPrediction(p));
          if (o.plot) {
            const a = await prepareAudio(files[0], { sampleRate: 16000 });
            writePlot(o.plot, await predictionSvg(p, { samples: a.samples, sampleRate: a.sampleRate }));
          }
        } else {
          const bar = ctx.progress(files.length, 'predicting');
          const preds = await model.predictBatch(
            files.map((f) => ({ audio: f, name: f, context: o.context })),
            { batchSize: o.batchSize, onProgress: (d) => bar.update(d) },
          );
          bar.stop();
          rows.push(...preds);
          for (const p of preds) ctx.print(formatPrediction(p));
        }
      } finally {
        await model.release();
      }
      for (const r of rows) for (const w of r.warnings) ctx.log.warn(w);
      if (rows.length && rows[0].note) ctx.log.info(rows[0].note);
      if (o.json) writeFileAtomic(o.json, jsonLines(rows));
      if (o.plot) ctx.log.info(`wrote ${o.plot}`);
    });
}
