/**
 * The coordinator's view of its jobs: on a terminal one bar per job (state, epoch, ETA from
 * the workers' progress events, machine); elsewhere (CI logs, pipes) a line when a job
 * changes state and a summary line at most every `intervalMs`.
 */
import cliProgress from 'cli-progress';
import { formatDuration, type ProgressStream } from '../util/progress.js';

export type JobState = 'queued' | 'waiting' | 'running' | 'done' | 'failed' | 'kept';

export interface JobView {
  title: string;
  state: JobState;
  machine?: string;
  epoch?: number;
  epochs?: number;
  etaSeconds?: number | null;
}

export interface JobsDisplay {
  update(id: string, v: Partial<JobView>): void;
  stop(): void;
}

const SCALE = 1000;

export function createJobsDisplay(
  jobs: { id: string; title: string; state: JobState }[],
  opts: { stream?: ProgressStream; tty?: boolean; intervalMs?: number } = {},
): JobsDisplay {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? stream.isTTY === true;
  const views = new Map(jobs.map((j) => [j.id, { title: j.title, state: j.state } as JobView]));
  const width = Math.min(40, Math.max(...jobs.map((j) => j.title.length), 4));
  const detail = (v: JobView) => {
    const ep = v.epochs ? `epoch ${Math.min(v.epoch ?? 0, v.epochs).toFixed(1)}/${v.epochs}` : '';
    const eta = v.state === 'running' && v.etaSeconds != null ? `ETA ${formatDuration(v.etaSeconds)}` : '';
    return [v.state, ep, eta, v.machine ? `on ${v.machine}` : ''].filter((s) => s !== '').join(' | ');
  };
  const value = (v: JobView) =>
    v.state === 'done' || v.state === 'kept'
      ? SCALE
      : v.epochs
        ? Math.round((SCALE * Math.min(v.epoch ?? 0, v.epochs)) / v.epochs)
        : 0;

  if (tty) {
    const multi = new cliProgress.MultiBar(
      {
        format: `{title} [{bar}] {detail}`,
        stream: stream as NodeJS.WritableStream,
        hideCursor: true,
        clearOnComplete: false,
        autopadding: true,
      },
      cliProgress.Presets.shades_classic,
    );
    const bars = new Map(
      [...views].map(([id, v]) => [
        id,
        multi.create(SCALE, value(v), { title: v.title.padEnd(width).slice(0, width), detail: detail(v) }),
      ]),
    );
    return {
      update(id, p) {
        const v = views.get(id);
        if (!v) return;
        Object.assign(v, p);
        bars.get(id)?.update(value(v), { title: v.title.padEnd(width).slice(0, width), detail: detail(v) });
      },
      stop: () => multi.stop(),
    };
  }

  const interval = opts.intervalMs ?? 10_000;
  let last = performance.now();
  const summary = () => {
    const n = (s: JobState) => [...views.values()].filter((v) => v.state === s).length;
    stream.write(
      `queue: ${n('running')} running, ${n('queued') + n('waiting')} waiting, ${n('done') + n('kept')} done, ${n('failed')} failed of ${views.size}\n`,
    );
    last = performance.now();
  };
  return {
    update(id, p) {
      const v = views.get(id);
      if (!v) return;
      const before = v.state;
      Object.assign(v, p);
      if (v.state !== before) stream.write(`job ${v.title}: ${detail(v)}\n`);
      else if (performance.now() - last >= interval) summary();
    },
    stop: () => summary(),
  };
}
