// Timing and memory helpers shared by the benchmarks: median of N runs after warm-ups,
// and peak resident memory per measurement (Linux VmHWM, reset through clear_refs).
import { readFileSync, writeFileSync } from 'node:fs';

export interface Timing {
  median: number;
  min: number;
  p90: number;
  runs: number;
  peak_rss_mb: number | null;
  peak_rss_above_start_mb: number | null;
}

function statusMb(field: string): number | null {
  try {
    const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export const rssMb = (): number => process.memoryUsage.rss() / 2 ** 20;

/** Resets the kernel's peak-RSS mark, so the next reading covers only what follows. */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

export async function measure(
  fn: () => Promise<unknown>,
  opts: { warmup?: number; repeats?: number; maxSeconds?: number } = {},
): Promise<Timing> {
  const warmup = opts.warmup ?? 3;
  const repeats = opts.repeats ?? 20;
  const maxMs = (opts.maxSeconds ?? 15) * 1000;
  gc?.();
  const start = rssMb();
  const canReset = resetPeak();
  for (let i = 0; i < warmup; i++) {
    await fn();
    gc?.();
  }
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < repeats; i++) {
    if (i >= 5 && performance.now() - t0 > maxMs) break;
    const a = performance.now();
    await fn();
    samples.push(performance.now() - a);
    // Freed output arrays are returned to the allocator between steps, as a trainer does.
    gc?.();
  }
  samples.sort((a, b) => a - b);
  const peak = canReset ? statusMb('VmHWM') : null;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    median: r(samples[Math.floor((samples.length - 1) / 2)]),
    min: r(samples[0]),
    p90: r(samples[Math.max(0, Math.ceil(0.9 * samples.length) - 1)]),
    runs: samples.length,
    peak_rss_mb: peak === null ? null : r(peak),
    peak_rss_above_start_mb: peak === null ? null : r(peak - start),
  };
}
