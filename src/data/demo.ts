/**
 * The demo corpus: a small SYNTHETIC speech corpus made with eSpeak NG (WASM), so that every
 * command can run without a licensed data set. 4 classes carried by wording and by prosody
 * (rate, pitch, amplitude, pitch range), 6 voices in 3 two-speaker sessions, utterances grouped
 * into short dialogues. Its numbers say nothing about real emotion recognition.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { removeStaleWorkDirs, writeFileAtomic } from '../util/fs.js';
import { readManifest } from './manifest.js';
import type { Corpus } from './types.js';
import { mulberry32 } from '../util/random.js';

export const DEMO_LABELS = ['ang', 'hap', 'sad', 'neu'] as const;
export const DEMO_NAME = 'demo (synthetic speech)';
/** Bump when the generated content changes: the cache folder is named after it. */
export const DEMO_VERSION = 'demo-v1';
export const DEMO_DEFAULT_PER_CLASS = 60;
const SEED = 20230820;

export interface DemoCorpusOptions {
  /** Where the corpus lives; default `$LEMER_CACHE/demo-v1`, else `~/.cache/lemer/demo-v1`. */
  dir?: string;
  /**
   * Utterances per class. Left out: reuse whatever is cached (else 60). Given and different
   * from the cached corpus: the corpus is generated again and replaces it.
   */
  perClass?: number;
  /** Called after each synthesised utterance while generating. */
  onProgress?: (done: number, total: number) => void;
  /** Synthesis threads (default: up to 4, one per core). */
  concurrency?: number;
}

/** The default cache folder of the demo corpus. */
export function defaultDemoDir(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.LEMER_CACHE ? resolve(env.LEMER_CACHE) : join(homedir(), '.cache', 'lemer');
  return join(root, DEMO_VERSION);
}

// ---------------------------------------------------------------------------------------------
// What is said, by whom, how

const SENTENCES: Record<(typeof DEMO_LABELS)[number], string[]> = {
  ang: [
    'I am furious that you lied to me again!',
    'This is outrageous, get out of my way!',
    'Stop yelling at me, I am so angry right now.',
    'You ruined everything, I hate this!',
    'How dare you take my money without asking!',
    'I am sick and tired of your stupid excuses.',
  ],
  hap: [
    'I am so happy to see you, this is wonderful!',
    'We won the prize, I am thrilled!',
    'What a lovely surprise, thank you so much!',
    'I love this place, it is perfect.',
    'That is great news, congratulations!',
    'I feel fantastic today, everything is going well.',
  ],
  sad: [
    'I miss her so much, I feel so alone.',
    'Nobody came to the funeral yesterday.',
    'I lost my job and I do not know what to do.',
    'Everything feels hopeless and grey.',
    'I am sorry, I cannot stop crying.',
    'It hurts to remember how it used to be.',
  ],
  neu: [
    'The meeting is at three on Tuesday.',
    'Please put the folder on the table.',
    'The train leaves from platform four.',
    'I will check the schedule tomorrow morning.',
    'The report has twelve pages in total.',
    'We need to buy milk and bread.',
  ],
};

/** Spoken under every class's prosody: only the speech tells these apart. */
const SHARED_SENTENCES = [
  'I got the letter this morning.',
  'She said she would call back later.',
  'We are going to the office now.',
  'That was the last one on the list.',
];
const SHARED_SHARE = 0.25;

interface Prosody {
  /** words per minute (-s) */
  rate: number;
  /** 0..99 (-p) */
  pitch: number;
  /** 0..150 (-a); more clips (MEASURED.md) */
  amplitude: number;
  /** 0..99 (-P) */
  range: number;
  /** pause between words, 10 ms units (-g) */
  wordGap: number;
}

// Loosely after acted speech: anger loud, fast and wide; sadness slow, low, quiet and flat.
const CLASS_PROSODY: Record<(typeof DEMO_LABELS)[number], Prosody> = {
  ang: { rate: 195, pitch: 58, amplitude: 140, range: 85, wordGap: 0 },
  hap: { rate: 180, pitch: 72, amplitude: 115, range: 80, wordGap: 0 },
  sad: { rate: 120, pitch: 28, amplitude: 60, range: 15, wordGap: 3 },
  neu: { rate: 160, pitch: 45, amplitude: 90, range: 40, wordGap: 1 },
};

const SPEAKERS = [
  { id: 'spk01', voice: 'en-us+m3', session: 'ses1' },
  { id: 'spk02', voice: 'en-us+f2', session: 'ses1' },
  { id: 'spk03', voice: 'en-gb+m7', session: 'ses2' },
  { id: 'spk04', voice: 'en-gb-scotland+f4', session: 'ses2' },
  { id: 'spk05', voice: 'en-029+m2', session: 'ses3' },
  { id: 'spk06', voice: 'en-gb-x-rp+f5', session: 'ses3' },
];
const DIALOGUE_TURNS = 6;

const rng = mulberry32;

export interface DemoPlanItem {
  id: string;
  label: string;
  text: string;
  speaker: string;
  session: string;
  dialogue: string;
  turn: number;
  voice: string;
  prosody: Prosody;
  /** Spoken with class prosody but neutral wording shared by all classes. */
  sharedText: boolean;
}

/** The whole corpus as data (no audio yet); a pure function of perClass. */
export function planDemoCorpus(perClass: number): DemoPlanItem[] {
  const r = rng(SEED);
  const jitter = (x: number, spread: number) => x + spread * (2 * r() - 1);
  const clamp = (x: number, lo: number, hi: number) => Math.round(Math.min(hi, Math.max(lo, x)));
  type Draft = Omit<DemoPlanItem, 'id' | 'dialogue' | 'turn'>;
  const bySession = new Map<string, Draft[]>();
  DEMO_LABELS.forEach((label, c) => {
    const own = SENTENCES[label];
    for (let k = 0; k < perClass; k++) {
      const spk = SPEAKERS[(k + c) % SPEAKERS.length];
      const sharedText = r() < SHARED_SHARE;
      const text = sharedText
        ? SHARED_SENTENCES[Math.floor(r() * SHARED_SENTENCES.length)]
        : own[Math.floor(r() * own.length)];
      const p = CLASS_PROSODY[label];
      const prosody: Prosody = {
        rate: clamp(p.rate * jitter(1, 0.08), 80, 400),
        pitch: clamp(jitter(p.pitch, 6), 0, 99),
        amplitude: clamp(jitter(p.amplitude, 10), 10, 150),
        range: clamp(jitter(p.range, 8), 0, 99),
        wordGap: p.wordGap,
      };
      const list = bySession.get(spk.session) ?? [];
      list.push({
        label,
        text,
        speaker: spk.id,
        session: spk.session,
        voice: spk.voice,
        prosody,
        sharedText,
      });
      bySession.set(spk.session, list);
    }
  });
  // Dialogues: mostly one emotion each, with some turns swapped in from elsewhere, as emotion
  // tends to persist within a conversation (this gives dialogue history some signal too).
  const items: DemoPlanItem[] = [];
  for (const [session, list] of [...bySession.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const order = list.map((_, i) => i);
    for (let s = 0; s < Math.round(order.length * 0.3); s++) {
      const i = Math.floor(r() * order.length);
      const j = Math.floor(r() * order.length);
      [order[i], order[j]] = [order[j], order[i]];
    }
    order.forEach((src, pos) => {
      const d = Math.floor(pos / DIALOGUE_TURNS);
      const turn = pos % DIALOGUE_TURNS;
      const dialogue = `${session}_d${String(d + 1).padStart(2, '0')}`;
      items.push({ ...list[src], id: `${dialogue}_t${turn}`, dialogue, turn });
    });
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Synthesis

interface SynthJob {
  index: number;
  text: string;
  voice: string;
  prosody: Prosody;
  out: string;
}

export const ESPEAK_MISSING =
  'the demo corpus is synthesised with the optional package "espeak-ng" (eSpeak NG as WASM, GPL-3.0-or-later), ' +
  'which is not installed. Install it with `npm install espeak-ng` (npm ci installs it unless optional ' +
  'dependencies are left out), or use a corpus of your own with --corpus manifest:<file>';

/** Where the espeak-ng package is, or a clear error saying how to get it. */
function locateEspeak(): { js: string; wasm: string } {
  let js: string;
  try {
    js = createRequire(import.meta.url).resolve('espeak-ng');
  } catch {
    throw new Error(ESPEAK_MISSING);
  }
  return { js, wasm: join(dirname(js), 'espeak-ng.wasm') };
}

function espeakArgs(job: SynthJob): string[] {
  const p = job.prosody;
  // -D: deterministic random mode, so that the same plan gives the same audio.
  return [
    '-D',
    '-w',
    '/out.wav',
    '-v',
    job.voice,
    '-s',
    `${p.rate}`,
    '-p',
    `${p.pitch}`,
    '-a',
    `${p.amplitude}`,
    '-P',
    `${p.range}`,
    '-g',
    `${p.wordGap}`,
    job.text,
  ];
}

/**
 * The synthesis worker, as plain JavaScript so that it runs the same from dist/ and from
 * src/ under tsx (workers do not inherit tsx's loader on Node 20). eSpeak's WASM build runs
 * main() once per module instance, so each utterance gets a fresh instance of the module
 * compiled once per worker (compiling its 18 MB of WASM per utterance would double the time).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync, writeFileSync } = require('node:fs');
const factoryP = import(workerData.url).then((m) => m.default);
const compiledP = WebAssembly.compile(readFileSync(workerData.wasm));
// Failures surface per job below; do not let them crash the worker first.
factoryP.catch(() => {});
compiledP.catch(() => {});
parentPort.on('message', async (job) => {
  const errs = [];
  try {
    const factory = await factoryP;
    const compiled = await compiledP;
    const m = await new Promise((resolve, reject) => {
      factory({
        arguments: job.args,
        print() {},
        printErr: (s) => errs.push(s),
        instantiateWasm(imports, done) {
          WebAssembly.instantiate(compiled, imports).then((i) => done(i, compiled), reject);
          return {};
        },
      }).then(resolve, reject);
    });
    const wav = m.FS.readFile('/out.wav');
    if (wav.length <= 44) throw new Error('no audio produced');
    writeFileSync(job.out, wav);
    parentPort.postMessage({ index: job.index });
  } catch (e) {
    const detail = errs.filter((x) => !x.includes('keepRuntimeAlive')).join(' ');
    parentPort.postMessage({ index: job.index, error: String((e && e.message) || e) + (detail ? ': ' + detail : '') });
  }
});
`;

/** Runs the jobs on `threads` workers, calling onDone after each finished file. */
async function synthesiseAll(jobs: SynthJob[], threads: number, onDone: () => void): Promise<void> {
  const { js, wasm } = locateEspeak();
  const url = pathToFileURL(js).href;
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolveAll, rejectAll) => {
      let next = 0;
      let finished = 0;
      let failed = false;
      const fail = (err: Error) => {
        if (!failed) {
          failed = true;
          rejectAll(err);
        }
      };
      const feed = (w: Worker) => {
        if (next >= jobs.length) return;
        const job = jobs[next++];
        w.postMessage({ index: job.index, args: espeakArgs(job), out: job.out });
      };
      for (let t = 0; t < threads; t++) {
        const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { url, wasm }, execArgv: [] });
        workers.push(w);
        w.on('message', (msg: { index: number; error?: string }) => {
          if (failed) return;
          if (msg.error) {
            const job = jobs[msg.index];
            fail(new Error(`espeak-ng failed on "${job.text}" (voice ${job.voice}): ${msg.error}`));
            return;
          }
          finished++;
          onDone();
          if (finished === jobs.length) resolveAll();
          else feed(w);
        });
        w.on('error', fail);
        w.on('exit', (code) => {
          if (finished < jobs.length)
            fail(new Error(`demo corpus: a synthesis worker stopped early (exit code ${code})`));
        });
        feed(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

// ---------------------------------------------------------------------------------------------
// The cache folder

interface DemoStamp {
  version: string;
  perClass: number;
  utterances: number;
  seed: number;
}

function readStamp(dir: string): DemoStamp | null {
  try {
    return JSON.parse(readFileSync(join(dir, 'demo.json'), 'utf8')) as DemoStamp;
  } catch {
    return null;
  }
}

const README = (perClass: number, n: number) => `SYNTHETIC DEMO CORPUS (lemer ${DEMO_VERSION})

Every file here was generated by lemer with eSpeak NG (a formant speech synthesizer).
It is NOT recorded speech and NOT real emotion: 4 classes (ang, hap, sad, neu), each spoken
with its own made-up prosody (rate, pitch, loudness, pitch range, with seeded jitter) and
worded with its own sentences; a quarter of the utterances use neutral sentences shared by
all classes, so that only their sound tells the class.

${n} utterances (${perClass} per class), 6 synthetic voices ("speakers") in 3 sessions of 2,
grouped into dialogues of up to ${DIALOGUE_TURNS} turns. manifest.jsonl lists them
(id, audio, text, label, speaker, session, dialogue, turn). Use it to check that the
software runs end to end, never to report emotion-recognition results.
`;

/**
 * Loads the demo corpus, generating it first where the cache holds none (or one of another
 * size, when `perClass` is given). Generation writes into a temporary sibling folder and
 * renames it into place when complete, so a crash never leaves a half corpus that is reused.
 */
export async function loadDemoCorpus(opts: DemoCorpusOptions = {}): Promise<Corpus> {
  const dir = resolve(opts.dir ?? defaultDemoDir());
  if (opts.perClass !== undefined && (!Number.isInteger(opts.perClass) || opts.perClass < 1)) {
    throw new Error(`demo corpus: perClass must be a whole number >= 1, got ${opts.perClass}`);
  }
  const stamp = readStamp(dir);
  const fresh =
    stamp !== null &&
    stamp.version === DEMO_VERSION &&
    (opts.perClass === undefined || stamp.perClass === opts.perClass) &&
    existsSync(join(dir, 'manifest.jsonl'));
  if (!fresh) {
    if (stamp === null && existsSync(dir) && readdirSync(dir).length > 0) {
      throw new Error(
        `${dir}: the folder exists and is not a lemer demo corpus (no demo.json); choose another --dir`,
      );
    }
    await generate(dir, opts.perClass ?? DEMO_DEFAULT_PER_CLASS, opts);
  }
  const corpus = await readManifest(join(dir, 'manifest.jsonl'), { labels: [...DEMO_LABELS] });
  return { ...corpus, name: DEMO_NAME };
}

async function generate(dir: string, perClass: number, opts: DemoCorpusOptions): Promise<void> {
  const plan = planDemoCorpus(perClass);
  locateEspeak(); // fail before making any folder
  mkdirSync(dirname(dir), { recursive: true });
  removeStaleWorkDirs(dir);
  const tmp = `${dir}.tmp-${process.pid}-${Date.now().toString(36)}`;
  mkdirSync(join(tmp, 'wav'), { recursive: true });
  try {
    const jobs: SynthJob[] = plan.map((p, index) => ({
      index,
      text: p.text,
      voice: p.voice,
      prosody: p.prosody,
      out: join(tmp, 'wav', `${p.id}.wav`),
    }));
    const threads = Math.max(
      1,
      Math.min(opts.concurrency ?? Math.min(4, availableParallelism()), jobs.length),
    );
    let done = 0;
    opts.onProgress?.(0, jobs.length);
    await synthesiseAll(jobs, threads, () => opts.onProgress?.(++done, jobs.length));
    const lines = plan.map((p) =>
      JSON.stringify({
        id: p.id,
        audio: `wav/${p.id}.wav`,
        text: p.text,
        label: p.label,
        speaker: p.speaker,
        session: p.session,
        dialogue: p.dialogue,
        turn: p.turn,
      }),
    );
    writeFileAtomic(join(tmp, 'manifest.jsonl'), lines.join('\n') + '\n');
    writeFileAtomic(join(tmp, 'README.txt'), README(perClass, plan.length));
    const stamp: DemoStamp = { version: DEMO_VERSION, perClass, utterances: plan.length, seed: SEED };
    // Written last: its presence marks a complete corpus.
    writeFileAtomic(join(tmp, 'demo.json'), JSON.stringify(stamp, null, 2) + '\n');
    install(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Puts the finished folder in place; an older corpus there is replaced only after the new one is complete. */
function install(tmp: string, dir: string): void {
  const old = existsSync(dir) ? `${dir}.tmp-${process.pid}-old-${Date.now().toString(36)}` : null;
  if (old) renameSync(dir, old);
  try {
    renameSync(tmp, dir);
  } catch (err) {
    // Another process may have finished the same corpus first: use theirs.
    if (readStamp(dir) === null) {
      if (old) renameSync(old, dir);
      throw err;
    }
  }
  if (old) rmSync(old, { recursive: true, force: true });
}
