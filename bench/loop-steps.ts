// K training steps per ONNX Runtime run (Trainer stepsPerRun, an ONNX Loop) against one
// step per run: the BERT-base-sized layer of engine-worker.ts, batch 4 x 150, Adam, 2 threads.
//   npm run bench -- loop-steps [--blocks N] [--memory-rounds R] [--ks 1,4,16] [--batch B]
// Time: lib/loop-worker.ts, all K in one process, alternating block by block (the machine
// is shared and noisy); per K the median over blocks of the per-step time, and the median
// of the per-block ratios (paired, so drift cancels). Memory: peak RSS (VmHWM) of the
// training loop from engine-worker.ts, a fresh process per K (time figures there too).
import { type Json, median, runWorker } from './lib/spawn.js';

const node = runWorker;
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

export default async function loopSteps(argv: string[]): Promise<Json> {
  const val = (n: string, d: string) => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : d);
  const blocks = val('--blocks', '10');
  const memoryRounds = Number(val('--memory-rounds', '1'));
  const ks = val('--ks', '1,4,16').split(',').map(Number);
  const batch = val('--batch', '4');

  process.stderr.write(`loop-steps: timing K=${ks} in one process, ${blocks} blocks\n`);
  const timing = node('loop-worker.ts', [batch, blocks, ks.join(',')]);
  const per: Record<string, number[]> = timing.per_step_ms;
  const cpu: Record<string, number[]> = timing.cpu_per_step_ms;
  const paired = (xs: Record<string, number[]>, k: number) =>
    round(median(xs[k].map((x, i) => xs[ks[0]][i] / x)), 3);
  const time: Json = {};
  for (const k of ks)
    time[`k${k}`] = {
      step_ms: round(median(per[k])),
      min_step_ms: round(Math.min(...per[k])),
      cpu_step_ms: round(median(cpu[k])),
      blocks_ms: per[k].map((x) => round(x)),
      ...(k === ks[0]
        ? {}
        : { [`speedup_vs_k${ks[0]}`]: paired(per, k), [`cpu_ratio_vs_k${ks[0]}`]: paired(cpu, k) }),
    };

  const memory: Json = {};
  for (let r = 0; r < memoryRounds; r++)
    for (const k of r % 2 ? [...ks].reverse() : ks) {
      process.stderr.write(`loop-steps: memory round ${r + 1}/${memoryRounds}, K=${k}\n`);
      const j = node('engine-worker.ts', ['layer', batch, '1', String(k)]);
      (memory[`k${k}`] ??= []).push(j.layer_train);
    }
  for (const k of ks) {
    const t = memory[`k${k}`] as Json[];
    memory[`k${k}`] = {
      peak_rss_mb: round(median(t.map((x) => x.peak_rss_mb))),
      peak_rss_above_start_mb: round(median(t.map((x) => x.peak_rss_above_start_mb))),
      fresh_process_step_ms: t.map((x) => round(x.median)),
    };
  }
  return {
    layer: 'BERT-base layer (bench/lib/bert-layer.ts), Adam',
    batch: Number(batch),
    seq: 150,
    threads: 2,
    steps_per_block: timing.steps_per_block,
    time,
    memory,
  };
}
