import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { defaultConfig } from '../../src/config/load.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'src/cli/main.ts');
const work = mkdtempSync(join(tmpdir(), 'lemer-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source (no build needed), as a user would run `lemer ...`. */
function lemer(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      {
        cwd: ROOT,
        env: { ...process.env, LEMER_CACHE: join(work, 'cache'), LEMER_LOG_LEVEL: '' },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** A mono 16-bit PCM WAV of `seconds` of a quiet tone. */
function writeWav(path: string, seconds: number, rate = 16000): void {
  const n = Math.round(seconds * rate);
  const b = Buffer.alloc(44 + 2 * n);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + 2 * n, 4);
  b.write('WAVEfmt ', 8, 'ascii');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(2 * n, 40);
  for (let i = 0; i < n; i++)
    b.writeInt16LE(Math.round(3000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + 2 * i);
  writeFileSync(path, b);
}

// A small manifest: 2 sessions x 2 speakers, 3 dialogues, labels ang/hap/sad/neu.
const rows = [
  {
    id: 'a1',
    audio: 'a1.wav',
    text: 'I hate this',
    label: 'ang',
    speaker: 'A',
    session: 'S1',
    dialogue: 'd1',
    turn: 0,
  },
  {
    id: 'a2',
    audio: 'a2.wav',
    text: 'how lovely',
    label: 'hap',
    speaker: 'B',
    session: 'S1',
    dialogue: 'd1',
    turn: 1,
  },
  {
    id: 'a3',
    audio: 'a3.wav',
    text: 'so sad',
    label: 'sad',
    speaker: 'A',
    session: 'S1',
    dialogue: 'd1',
    turn: 2,
  },
  {
    id: 'b1',
    audio: 'b1.wav',
    text: 'the table',
    label: 'neu',
    speaker: 'C',
    session: 'S2',
    dialogue: 'd2',
    turn: 0,
  },
  {
    id: 'b2',
    audio: 'b2.wav',
    text: 'go away',
    label: 'ang',
    speaker: 'D',
    session: 'S2',
    dialogue: 'd2',
    turn: 1,
  },
  {
    id: 'b3',
    audio: 'b3.wav',
    text: 'fine',
    label: 'neu',
    speaker: 'C',
    session: 'S2',
    dialogue: 'd3',
    turn: 0,
  },
];
const manifest = join(work, 'm.jsonl');
writeFileSync(manifest, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
rows.forEach((r, i) => writeWav(join(work, r.audio), 0.5 * (i + 1)));

test('--help works for the program and every command', async () => {
  const cases: [string[], RegExp][] = [
    [['--help'], /Usage: lemer[\s\S]*corpus[\s\S]*demo[\s\S]*features[\s\S]*config/],
    [
      ['corpus', 'info', '--help'],
      /Usage: lemer corpus info[\s\S]*--corpus <spec>[\s\S]*--durations[\s\S]*--json <file>[\s\S]*--log-level/,
    ],
    [
      ['corpus', 'folds', '--help'],
      /Usage: lemer corpus folds[\s\S]*--corpus <spec>[\s\S]*--protocol <key>[\s\S]*--json <file>/,
    ],
    [
      ['demo', 'generate', '--help'],
      /Usage: lemer demo generate[\s\S]*--dir <dir>[\s\S]*--per-class <n>[\s\S]*--json <file>/,
    ],
    [
      ['features', 'logmel', '--help'],
      /Usage: lemer features logmel \[options\] <audio>[\s\S]*--json <file>/,
    ],
    [['config', 'show', '--help'], /Usage: lemer config show[\s\S]*--json <file>[\s\S]*--config <file>/],
  ];
  const runs = await Promise.all(cases.map(([args]) => lemer(...args)));
  runs.forEach((r, i) => {
    assert.equal(r.code, 0, `${cases[i][0].join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, cases[i][1]);
  });
});

test('corpus info on a manifest: counts on stdout and in --json; --durations sums the audio', async () => {
  const out = join(work, 'info.json');
  const r = await lemer('corpus', 'info', '--corpus', `manifest:${manifest}`, '--json', out, '--durations');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /utterances: 6 \(6 with audio, 0 text only\)/);
  assert.match(r.stdout, /labels: ang 2, hap 1, neu 2, sad 1/);
  const info = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(info.utterances, 6);
  assert.deepEqual(info.perLabel, { ang: 2, hap: 1, neu: 2, sad: 1 });
  assert.deepEqual(info.sessions.S1, { total: 3, labels: { ang: 1, hap: 1, neu: 0, sad: 1 } });
  assert.deepEqual(info.sessions.S2, { total: 3, labels: { ang: 1, hap: 0, neu: 2, sad: 0 } });
  assert.deepEqual(Object.keys(info.speakers), ['A', 'B', 'C', 'D']);
  assert.equal(info.speakers.C.total, 2);
  assert.deepEqual(info.dialogues, { count: 3, minTurns: 1, meanTurns: 2, maxTurns: 3 });
  // 0.5 + 1 + ... + 3 s = 10.5 s
  assert.equal(info.durations.totalSeconds, 10.5);
  assert.equal(info.durations.measured, 6);
  assert.equal(info.durations.perLabelSeconds.neu, 2 + 3);
  assert.deepEqual(info.warnings, []);
});

test('corpus info with --labels restricts the label set; a config file sets it too', async () => {
  const r = await lemer('corpus', 'info', '--corpus', `manifest:${manifest}`, '--labels', 'ang,hap');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^lemer: .*m\.jsonl:\d+: label "sad" is not in the label set \[ang, hap\]/);
  const cfg = join(work, 'two.yaml');
  writeFileSync(cfg, `classes: [ang, hap]\ncorpus: manifest:m.jsonl\n`);
  const c = await lemer('--config', cfg, 'corpus', 'info');
  assert.equal(c.code, 1);
  assert.match(c.stderr, /label "sad" is not in the label set \[ang, hap\]/);
  const all = await lemer(
    '--config',
    cfg,
    'corpus',
    'info',
    '--labels',
    'ang,hap,neu,sad',
    '--json',
    join(work, 'i2.json'),
  );
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(JSON.parse(readFileSync(join(work, 'i2.json'), 'utf8')).labels, [
    'ang',
    'hap',
    'neu',
    'sad',
  ]);
});

test('corpus folds: one fold per speaker, disjoint, in --json', async () => {
  const out = join(work, 'folds.json');
  const r = await lemer(
    'corpus',
    'folds',
    '--corpus',
    `manifest:${manifest}`,
    '--protocol',
    'speaker',
    '--json',
    out,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /leave-one-speaker-out, 4 folds/);
  assert.match(r.stdout, /disjoint/);
  const f = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(
    f.folds.map((x: { name: string; train: number; test: number }) => [x.name, x.train, x.test]),
    [
      ['A', 4, 2],
      ['B', 5, 1],
      ['C', 4, 2],
      ['D', 5, 1],
    ],
  );
  assert.equal(f.checks.ok, true);
  assert.equal(f.checks.testedExactlyOnce, 6);
  const s = await lemer('corpus', 'folds', '--corpus', `manifest:${manifest}`);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /leave-one-session-out, 2 folds/);
});

test('errors: "lemer: <message>", exit 1, no stack trace unless --log-level debug', async () => {
  const [bad, missing, debug, unknownOpt, badChoice] = await Promise.all([
    lemer('corpus', 'info', '--corpus', 'bogus:/x'),
    lemer('corpus', 'info', '--corpus', `manifest:${join(work, 'none.jsonl')}`),
    lemer('corpus', 'info', '--corpus', 'bogus:/x', '--log-level', 'debug'),
    lemer('corpus', 'info', '--corpse', 'demo'),
    lemer('corpus', 'folds', '--protocol', 'dialogue'),
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^lemer: invalid corpus "bogus:\/x"; accepted forms: .*manifest:/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
  assert.equal(bad.stdout, '');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^lemer: .*none\.jsonl/);
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /lemer: invalid corpus/);
  assert.match(debug.stderr, /\n\s+at /, 'stack at debug level');
  assert.equal(unknownOpt.code, 1);
  assert.match(unknownOpt.stderr, /^lemer: unknown option '--corpse'/);
  assert.equal(badChoice.code, 1);
  assert.match(badChoice.stderr, /^lemer: option '--protocol <key>' argument 'dialogue' is invalid/);
});

test('config show prints the defaults as YAML; a bad config names file and field', async () => {
  const r = await lemer('config', 'show');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(parseYaml(r.stdout), defaultConfig());
  const cfg = join(work, 'exp.yaml');
  writeFileSync(cfg, 'optim:\n  lr:\n    text: fast\n');
  const bad = await lemer('config', 'show', '--config', cfg);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, `lemer: ${cfg}: optim.lr.text: expected number, got "fast"\n`);
  const good = join(work, 'good.yaml');
  writeFileSync(good, 'head:\n  fusion: label-only\n');
  const out = join(work, 'config.json');
  const ok = await lemer('--config', good, 'config', 'show', '--json', out);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /fusion: label-only/);
  assert.equal(JSON.parse(readFileSync(out, 'utf8')).head.fusion, 'label-only');
});

test('features logmel: frames and bins of a known signal', async () => {
  const wav = join(work, 'one-second.wav');
  writeWav(wav, 1, 22050); // resampled to 16 kHz on load
  const out = join(work, 'lm.json');
  const r = await lemer('features', 'logmel', wav, '--json', out);
  assert.equal(r.code, 0, r.stderr);
  const f = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(f.sampleRate, 16000);
  assert.equal(f.samples, 16000);
  // Kaldi framing (snip edges): 1 + floor((16000 - 400) / 160) = 98 frames.
  assert.equal(f.frames, 98);
  assert.equal(f.bins, 80);
  assert.equal(f.binMean, undefined);
  assert.equal(f.raw.binMean.length, 80);
  assert.ok(Math.abs(f.normalized.mean) < 1e-3);
  assert.match(r.stdout, /98 frames x 80 bins/);
  const missing = await lemer('features', 'logmel', join(work, 'nope.wav'));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^lemer: .*nope\.wav: file not found/);
});

let hasEspeak = true;
try {
  createRequire(import.meta.url).resolve('espeak-ng');
} catch {
  hasEspeak = false;
}

test(
  'demo generate makes a corpus with progress, then corpus info reads it',
  { skip: hasEspeak ? false : 'espeak-ng not installed' },
  async () => {
    const dir = join(work, 'demo');
    const out = join(work, 'demo.json');
    const r = await lemer('demo', 'generate', '--dir', dir, '--per-class', '1', '--json', out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /generated: demo \(synthetic speech\), 4 utterances/);
    assert.match(r.stderr, /synthesising: 4\/4 done in/);
    const j = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(j.generated, true);
    assert.deepEqual(j.perLabel, { ang: 1, hap: 1, sad: 1, neu: 1 });
    const again = await lemer('demo', 'generate', '--dir', dir);
    assert.match(again.stdout, /already there \(reused\)/);
    const info = await lemer('corpus', 'info', '--corpus', `demo:${dir}`);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /corpus: demo \(synthetic speech\)/);
    assert.match(info.stdout, /labels: ang 1, hap 1, sad 1, neu 1/);
  },
);

test('corpus info --label-map: renamed labels, only the mapped ones, dropped counts per label', async () => {
  const out = join(work, 'mapped.json');
  const r = await lemer(
    'corpus',
    'info',
    '--corpus',
    `manifest:${manifest}`,
    '--label-map',
    'ang=Mad,neu=Calm',
    '--json',
    out,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /labels: Mad 2, Calm 2/);
  assert.match(r.stdout, /label map: ang=Mad, neu=Calm\ndropped by the label map: 2 \(hap 1, sad 1\)/);
  const info = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(info.labelMap, { map: { ang: 'Mad', neu: 'Calm' }, dropped: { hap: 1, sad: 1 } });
  // labelMap in a config file does the same; --label-map overrides it.
  const cfg = join(work, 'map.yaml');
  writeFileSync(cfg, `classes: [Calm, Mad]\nlabelMap: { ang: Mad, neu: Calm, sad: Calm }\n`);
  const c = await lemer('--config', cfg, 'corpus', 'info', '--corpus', `manifest:${manifest}`);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /labels: Calm 3, Mad 2/);
  const bad = await lemer('corpus', 'info', '--corpus', `manifest:${manifest}`, '--label-map', 'joy=hap');
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /^lemer: label map: corpus m has no label\(s\) joy \(its labels: ang, hap, neu, sad\)/,
  );
});

test('invalid UTF-8 in a manifest fails naming file and line; --invalid-utf8 warn reads it with a count', async () => {
  const m = join(work, 'bad-utf8.jsonl');
  writeFileSync(
    m,
    Buffer.concat([
      Buffer.from('{"id":"x1","text":"ok","label":"ang"}\n{"id":"x2","text":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('","label":"neu"}\n'),
    ]),
  );
  const r = await lemer('corpus', 'info', '--corpus', `manifest:${m}`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^lemer: .*bad-utf8\.jsonl:2: invalid UTF-8 \(byte 0xe9 at column 23\)/);
  const w = await lemer('corpus', 'info', '--corpus', `manifest:${m}`, '--invalid-utf8', 'warn');
  assert.equal(w.code, 0, w.stderr);
  assert.match(
    w.stdout,
    /bad-utf8\.jsonl: 1 line with invalid UTF-8 read with U\+FFFD for the bad bytes \(line 2\)/,
  );
});

test('corpus info --durations lists every audio file that does not decode', async () => {
  const dir = mkdtempSync(join(work, 'badaudio-'));
  writeWav(join(dir, 'good.wav'), 1);
  writeFileSync(join(dir, 'broken.wav'), 'RIFF\x04\x00\x00\x00WAVE');
  const m = join(dir, 'm.jsonl');
  writeFileSync(
    m,
    ['good', 'broken'].map((id) => JSON.stringify({ id, audio: `${id}.wav`, label: 'neu' })).join('\n') +
      '\n',
  );
  const out = join(dir, 'info.json');
  const r = await lemer('corpus', 'info', '--corpus', `manifest:${m}`, '--durations', '--json', out);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(info.durations.measured, 1);
  assert.equal(info.durations.unreadable.length, 1);
  assert.equal(info.durations.unreadable[0].id, 'broken');
  assert.match(info.durations.unreadable[0].error, /broken\.wav: broken WAV: no fmt chunk/);
});

test('features logmel --bins 128: refused by default, --allow-empty-filters keeps the empty bin at the floor', async () => {
  const wav = join(work, 'one-second-16k.wav');
  writeWav(wav, 1);
  const refused = await lemer('features', 'logmel', wav, '--bins', '128');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /mel bin 3 of 128 covers no FFT bin/);
  const out = join(work, 'lm128.json');
  const r = await lemer('features', 'logmel', wav, '--bins', '128', '--allow-empty-filters', '--json', out);
  assert.equal(r.code, 0, r.stderr);
  const f = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(f.bins, 128);
  assert.equal(f.raw.binStd[3], 0);
  assert.equal(f.raw.binMean[3], Number(Math.fround(Math.log(1.1920928955078125e-7)).toFixed(5)));
});

test('npm in the checkout prints no "Unknown project config" warning; the ORT install script stays denied', async () => {
  const r = await new Promise<Run>((done) =>
    execFile('npm', ['pkg', 'get', 'name'], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      done({ code: err ? 1 : 0, stdout, stderr }),
    ),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /Unknown project config/);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  // onnxruntime-node's install script downloads CUDA libraries: denied, so `npm ci` works offline.
  assert.equal(pkg.allowScripts['onnxruntime-node'], false);
});
