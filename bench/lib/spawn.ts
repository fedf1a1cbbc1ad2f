// Running one benchmark figure in a fresh process, under the settings every engine
// comparison uses (both sides): OpenMP threads that sleep when idle, and glibc reusing
// freed large buffers instead of faulting in fresh pages (MEASURED.md).
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = dirname(dirname(fileURLToPath(import.meta.url)));

export const benchEnv = {
  ...process.env,
  OMP_WAIT_POLICY: 'PASSIVE',
  MALLOC_MMAP_THRESHOLD_: '1073741824',
  MALLOC_TRIM_THRESHOLD_: '4294967296',
};

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Runs a command that prints one JSON object (last on stdout), and parses it. */
export function runJson(cmd: string, args: string[]): Json {
  const r = spawnSync(cmd, args, { env: benchEnv, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  // Workers print one line of JSON last; the PyTorch script prints an indented object alone.
  const out = r.stdout.trim();
  const last = out.slice(out.lastIndexOf('\n') + 1);
  return JSON.parse(last.startsWith('{') && last.endsWith('}') ? last : out.slice(out.search(/^\{/m)));
}

/** A TypeScript worker under bench/lib, with tsx and an exposed GC. */
export const runWorker = (script: string, args: string[]): Json =>
  runJson(process.execPath, ['--import', 'tsx', '--expose-gc', `${benchDir}/lib/${script}`, ...args]);

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
