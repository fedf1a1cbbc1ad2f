import cliProgress from 'cli-progress';

/** A progress display for a job of known size. */
export interface Progress {
  /** Marks `n` more items done (default 1). */
  tick(n?: number): void;
  /** Sets the absolute count of items done. */
  update(done: number): void;
  /** Ends the display; prints a final summary line where plain lines are in use. */
  stop(): void;
}

/** Anything with write(); `isTTY` picks the bar, otherwise plain lines. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  total: number;
  label: string;
  /** Where to draw; default process.stderr (stdout stays clean for results). */
  stream?: ProgressStream;
  /** Plain-line mode: the least time between two lines (default 5000 ms). */
  intervalMs?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
  /** Force the mode instead of asking the stream. */
  tty?: boolean;
}

/** Formats seconds as `42s`, `3m05s` or `1h02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatRate(rate: number): string {
  if (!Number.isFinite(rate)) return '?';
  return rate >= 100 ? rate.toFixed(0) : rate >= 10 ? rate.toFixed(1) : rate.toFixed(2);
}

/**
 * A bar with count, rate and ETA on a terminal; on anything else (CI logs, pipes) a plain
 * line at most every `intervalMs`, so that logs stay short but show that work goes on.
 */
export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? (() => performance.now());
  const total = Math.max(0, opts.total);
  const tty = opts.tty ?? stream.isTTY === true;
  const start = now();
  let done = 0;
  let stopped = false;

  const rate = (): number => {
    const secs = (now() - start) / 1000;
    return secs > 0 ? done / secs : NaN;
  };
  const eta = (): number => {
    const r = rate();
    return done >= total ? 0 : r > 0 ? (total - done) / r : NaN;
  };

  if (tty) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${opts.label} [{bar}] {value}/{total} | {rate}/s | ETA {etaText}`,
        stream: stream as NodeJS.WritableStream,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { rate: '?', etaText: '?' });
    const set = (n: number) => {
      done = Math.min(total, n);
      bar.update(done, { rate: formatRate(rate()), etaText: formatDuration(eta()) });
    };
    return {
      tick: (n = 1) => set(done + n),
      update: (n) => set(n),
      stop: () => {
        if (stopped) return;
        stopped = true;
        bar.stop();
      },
    };
  }

  const interval = opts.intervalMs ?? 5000;
  let lastLine = start;
  const line = () => {
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    stream.write(
      `${opts.label}: ${done}/${total} (${pct}%) ${formatRate(rate())}/s, ETA ${formatDuration(eta())}\n`,
    );
    lastLine = now();
  };
  const set = (n: number) => {
    done = Math.min(total, n);
    if (!stopped && now() - lastLine >= interval && done < total) line();
  };
  return {
    tick: (n = 1) => set(done + n),
    update: (n) => set(n),
    stop: () => {
      if (stopped) return;
      stopped = true;
      const secs = (now() - start) / 1000;
      stream.write(
        `${opts.label}: ${done}/${total} done in ${formatDuration(secs)} (${formatRate(rate())}/s)\n`,
      );
    },
  };
}
