// Service benchmark: `lemer serve` under a bounded loopback load (autocannon, 127.0.0.1 only,
// each phase self-stopping after its share of --duration), 5 s clips with a transcript, POSTed
// as multipart. Prints requests/s, p50 and p99 latency at 1, 4 and 16 concurrent clients; the
// share of 503s once the clients outnumber the queue bound (2x the bound); the server's RSS
// after warm-up and at the end; and, for comparison, `lemer predict`'s batch rate
// (Lemer.predictBatch, what `lemer predict` runs for many files) on the same clips.
//   npm run bench -- serve [--model <dir>] [--duration 300] [--threads 2] [--queue 16]
// Without --model: the demo model (trained on first use and cached, as `lemer serve` does).
// Goals (issue 14): p99 < 3x p50 at the concurrency the machine saturates at; service
// throughput within 10 % of the batch rate; RSS growth after warm-up under 10 %.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { demoModel } from '../src/predict/demo-model.js';
import { Lemer, type PredictInput } from '../src/predict/lemer.js';
import { benchEnv } from './lib/spawn.js';
import { wav16 } from './lib/wav.js';

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const TEXT = 'I got the letter this morning, and I read it twice before I called you.';
const BOUNDARY = 'lemerBenchBoundary7e3f';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** A 5 s voiced-like clip (a gliding harmonic tone with noise), 16-bit 16 kHz WAV. */
function clip(seed: number, seconds = 5, rate = 16000): Uint8Array {
  const n = seconds * rate;
  const x = new Float32Array(n);
  let s = seed >>> 0 || 1;
  let phase = 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const f0 = 110 + 40 * seed + 30 * Math.sin((2 * Math.PI * i) / (rate * 1.3));
    phase += (2 * Math.PI * f0) / rate;
    const env = 0.5 + 0.5 * Math.sin((2 * Math.PI * i) / (rate * 0.4));
    x[i] =
      env * (0.3 * Math.sin(phase) + 0.15 * Math.sin(2 * phase) + 0.08 * Math.sin(3 * phase)) +
      0.02 * (s / 2 ** 32 - 0.5);
  }
  return wav16(x, rate);
}

function multipart(wav: Uint8Array, name: string): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; filename="${name}"\r\nContent-Type: audio/wav\r\n\r\n`,
    ),
    Buffer.from(wav),
    Buffer.from(
      `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="text"\r\n\r\n${TEXT}\r\n--${BOUNDARY}--\r\n`,
    ),
  ]);
}

function rssMb(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return m ? round(Number(m[1]) / 1024, 1) : NaN;
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) of stat(5), counted from the state field (3).
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

const quantile = (sorted: number[], q: number): number =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;

/** `lemer serve` in a child process on a free loopback port; resolves once it listens. */
async function startServer(
  model: string,
  threads: number,
  queue: number,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)),
      '--log-level',
      'info',
      'serve',
      '--model',
      model,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--threads',
      String(threads),
      '--max-queue',
      String(queue),
      '--timeout',
      '120',
    ],
    { env: benchEnv, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = err.match(/on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`lemer serve exited (${code}):\n${err.slice(-2000)}`)));
  });
  return { child, url };
}

interface Phase {
  connections: number;
  seconds: number;
  requestsPerSecond: number;
  ok: number;
  status503: number;
  otherErrors: number;
  share503: number;
  p50Ms: number;
  p99Ms: number;
  p99OverP50: number;
  meanMs: number;
  rssMb: number;
  /** CPU cores the server process used on average during the phase, and the load generator. */
  serverCores: number;
  clientCores: number;
  /** Server CPU seconds per answered prediction: the cost, whatever share of the CPUs it got. */
  serverCpuMsPerPrediction: number;
}

async function load(
  url: string,
  bodies: Buffer[],
  connections: number,
  seconds: number,
  pid: number,
): Promise<Phase> {
  const okTimes: number[] = [];
  let n503 = 0;
  let other = 0;
  const inst = autocannon({
    url: `${url}/v1/predict`,
    connections,
    duration: seconds,
    timeout: 120,
    requests: bodies.map((body) => ({
      method: 'POST' as const,
      path: '/v1/predict',
      headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      body,
    })),
  });
  // The types give a Promise without a callback; the object is also the run's EventEmitter.
  (inst as unknown as NodeJS.EventEmitter).on(
    'response',
    (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status === 200) okTimes.push(ms);
      else if (status === 503) n503++;
      else other++;
    },
  );
  const cpu0 = cpuSeconds(pid);
  const me0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await inst;
  const wall = (performance.now() - t0) / 1000;
  const me = process.cpuUsage(me0);
  const sorted = [...okTimes].sort((a, b) => a - b);
  const total = okTimes.length + n503 + other;
  const p50 = quantile(sorted, 0.5);
  const p99 = quantile(sorted, 0.99);
  return {
    connections,
    seconds: round(r.duration, 1),
    requestsPerSecond: round(okTimes.length / r.duration),
    ok: okTimes.length,
    status503: n503,
    otherErrors: other + r.errors + r.timeouts,
    share503: round(total ? n503 / total : 0, 4),
    p50Ms: round(p50, 1),
    p99Ms: round(p99, 1),
    p99OverP50: round(p99 / p50, 2),
    meanMs: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length), 1),
    rssMb: rssMb(pid),
    serverCores: round((cpuSeconds(pid) - cpu0) / wall, 2),
    serverCpuMsPerPrediction: round((1000 * (cpuSeconds(pid) - cpu0)) / Math.max(1, okTimes.length), 1),
    clientCores: round((me.user + me.system) / 1e6 / wall, 2),
  };
}

/** Lemer.predictBatch (the path of `lemer predict a.wav b.wav ...`) on the same clips: clips/s. */
async function batchRate(model: string, clips: Uint8Array[], threads: number, seconds: number) {
  const m = await Lemer.load(model, { threads });
  const inputs: PredictInput[] = [...clips, ...clips, ...clips, ...clips].map((c, i) => ({
    audio: c,
    text: TEXT,
    name: `clip${i}.wav`,
  }));
  await m.predictBatch(inputs.slice(0, 4), { batchSize: 8 });
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await m.predictBatch(inputs, { batchSize: 8 });
    n += inputs.length;
  }
  const s = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await m.release();
  return {
    clips: n,
    seconds: round(s, 1),
    clipsPerSecond: round(n / s),
    batchSize: 8,
    cores: round((cpu.user + cpu.system) / 1e6 / s, 2),
    cpuMsPerClip: round((cpu.user + cpu.system) / 1000 / n, 1),
  };
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const duration = Number(flag(args, '--duration') ?? 300);
  const threads = Number(flag(args, '--threads') ?? 2);
  const queue = Number(flag(args, '--queue') ?? 16);
  if (!(duration >= 10)) throw new Error(`--duration must be at least 10 (seconds), got ${duration}`);
  let model = flag(args, '--model');
  let demo: Record<string, unknown> | null = null;
  if (!model) {
    const d = await demoModel({ log: (m) => console.error(m), warn: (m) => console.error(m) });
    model = d.dir;
    demo = { dir: d.dir, fold: d.stamp.fold, ua: d.stamp.ua, trainedNow: d.trained };
  }
  const clips = [1, 2, 3, 4].map((s) => clip(s));
  const bodies = clips.map((c, i) => multipart(c, `clip${i}.wav`));
  // Shares of --duration: warm-up 5 % (at least 6 s), 1 / 4 / 16 clients 22 % each, overload
  // 14 %, batch rate 15 %.
  const share = (f: number) => Math.max(3, Math.round(f * duration));
  console.error(`batch rate: Lemer.predictBatch on the same clips for ${share(0.15)} s`);
  const batch = await batchRate(model, clips, threads, share(0.15));
  const { child, url } = await startServer(model, threads, queue);
  const pid = child.pid!;
  try {
    const rssBeforeWarmup = rssMb(pid);
    // Warm-up at 16 clients (batches of 8) then 1 (batches of 1): ONNX Runtime's arena grows
    // once for each batch shape, so that growth belongs before the start figure.
    const warm = Math.max(3, Math.round(share(0.05) / 2));
    console.error(`warm-up: ${warm} s at 16 clients, then ${warm} s at 1`);
    await load(url, bodies, 16, warm, pid);
    await load(url, bodies, 1, warm, pid);
    const rssStart = rssMb(pid);
    const phases: Phase[] = [];
    for (const c of [1, 4, 16]) {
      console.error(`load: ${c} client(s) for ${share(0.22)} s`);
      phases.push(await load(url, bodies, c, share(0.22), pid));
    }
    const overC = 2 * queue;
    console.error(`overload: ${overC} clients (queue bound ${queue}) for ${share(0.14)} s`);
    const overload = await load(url, bodies, overC, share(0.14), pid);
    const rssEnd = rssMb(pid);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const counter = (name: string) => Number(metrics.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1] ?? NaN);
    const meanBatch = round(counter('lemer_batched_predictions_total') / counter('lemer_batches_total'), 2);
    // Saturation: the fewest clients whose rate is within 5 % of the best.
    const best = Math.max(...phases.map((p) => p.requestsPerSecond));
    const sat = phases.find((p) => p.requestsPerSecond >= 0.95 * best)!;
    return {
      model,
      demo,
      clip: { seconds: 5, sampleRate: 16000, bytes: clips[0].length, textChars: TEXT.length },
      threads,
      queueBound: queue,
      durationSeconds: duration,
      phases,
      overload: { queueBound: queue, ...overload },
      batch,
      serverMeanBatchSize: meanBatch,
      machine: { cores: availableParallelism(), loadAverage1m: round(loadavg()[0], 2) },
      rssMb: {
        beforeWarmup: rssBeforeWarmup,
        start: rssStart,
        end: rssEnd,
        growth: round((rssEnd - rssStart) / rssStart, 4),
      },
      goals: {
        saturationConnections: sat.connections,
        p99OverP50AtSaturation: sat.p99OverP50,
        p99Under3xP50: sat.p99OverP50 < 3,
        throughputOverBatchRate: round(best / batch.clipsPerSecond),
        throughputWithin10PercentOfBatch: best >= 0.9 * batch.clipsPerSecond,
        // Under a shared machine's varying load, CPU time per prediction compares the two
        // paths whatever share of the cores each got.
        cpuPerPredictionOverBatch: round(sat.serverCpuMsPerPrediction / batch.cpuMsPerClip),
        rssGrowthUnder10Percent: (rssEnd - rssStart) / rssStart < 0.1,
      },
      note: 'loopback on a shared 2-core machine: the load generator competes with the server for the CPUs',
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}
