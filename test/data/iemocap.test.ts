import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkIemocapCounts, historyFor, IEMOCAP_KNOWN_COUNTS, readIemocap } from '../../src/data/index.js';
import type { Utterance } from '../../src/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-iemocap-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A 16-bit mono PCM WAV of a few samples: the reader only needs the file to exist. */
function tinyWav(): Buffer {
  const samples = 16;
  const b = Buffer.alloc(44 + samples * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + samples * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(16000, 24);
  b.writeUInt32LE(32000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(samples * 2, 40);
  return b;
}

interface FakeTurn {
  suffix: string;
  start: number;
  end: number;
  text: string;
  label?: string; // undefined: transcribed but not evaluated (the XX turns)
}

// Per session: an improvisation with every kind of turn, and a short script.
const IMPRO: FakeTurn[] = [
  { suffix: 'F000', start: 1.0, end: 2.0, text: 'Excuse me.', label: 'neu' },
  { suffix: 'M000', start: 2.5, end: 3.5, text: 'Do you have your forms?', label: 'exc' },
  { suffix: 'F001', start: 4.0, end: 5.0, text: 'This is ridiculous!', label: 'ang' },
  { suffix: 'MXX0', start: 5.2, end: 5.5, text: 'Hmm.' },
  { suffix: 'M001', start: 6.0, end: 7.0, text: 'I am so sorry.', label: 'sad' },
  { suffix: 'F002', start: 8.0, end: 9.0, text: 'Whatever.', label: 'xxx' },
  { suffix: 'M002', start: 9.5, end: 10.0, text: 'Ugh, again.', label: 'fru' },
  { suffix: 'F003', start: 10.5, end: 11.0, text: 'Something else.', label: 'oth' },
  { suffix: 'M003', start: 11.5, end: 12.25, text: 'Yay, it worked.', label: 'hap' },
];
const SCRIPT: FakeTurn[] = [
  { suffix: 'F000', start: 0.5, end: 1.5, text: 'Morning.', label: 'neu' },
  { suffix: 'M000', start: 2.0, end: 4.0, text: 'Not a good one.', label: 'sad' },
];

interface FakeOptions {
  omitSession?: number;
  dropTranscript?: string;
  dropWav?: string;
}

function fmt(x: number, width: number): string {
  return x.toFixed(4).padStart(width, '0');
}

/** Writes a release tree in the real file formats. */
function writeRelease(name: string, o: FakeOptions = {}): string {
  const root = join(tmp, name);
  for (let s = 1; s <= 5; s++) {
    if (s === o.omitSession) continue;
    const sess = join(root, `Session${s}`);
    const evalDir = join(sess, 'dialog', 'EmoEvaluation');
    const transDir = join(sess, 'dialog', 'transcriptions');
    mkdirSync(join(evalDir, 'Categorical'), { recursive: true });
    mkdirSync(transDir, { recursive: true });
    for (const [dlg, turns] of [
      [`Ses0${s}F_impro01`, IMPRO],
      [`Ses0${s}M_script01_1`, SCRIPT],
    ] as const) {
      // Evaluation file: header, then per turn the summary line and evaluator lines, in an
      // order different from time order so that the reader has to sort.
      const ev = ['% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]', ''];
      for (const t of [...turns].reverse()) {
        if (!t.label) continue;
        ev.push(
          `[${t.start.toFixed(4)} - ${t.end.toFixed(4)}]\t${dlg}_${t.suffix}\t${t.label}\t[2.5000, 2.5000, 2.5000]`,
        );
        ev.push('C-E2:\tNeutral;\t()', 'C-E3:\tNeutral;\t()', 'A-E3:\tval 3; act 2; dom  2;\t()', '');
      }
      writeFileSync(join(evalDir, `${dlg}.txt`), ev.join('\n'));
      writeFileSync(
        join(evalDir, 'Categorical', `${dlg}_e2_cat.txt`),
        `${dlg}_${turns[0].suffix} :Neutral; ()\n`,
      );
      // Transcript: men's lines first, then women's (not time order), plus non-turn noise.
      const ordered = [
        ...turns.filter((t) => t.suffix.startsWith('M')),
        ...turns.filter((t) => t.suffix.startsWith('F')),
      ];
      const tr: string[] = [];
      for (const t of ordered) {
        const id = `${dlg}_${t.suffix}`;
        if (id === o.dropTranscript) continue;
        tr.push(`${id} [${fmt(t.start, 8)}-${fmt(t.end, 8)}]: ${t.text}`);
      }
      tr.splice(1, 0, 'M: [BREATHING]', `${dlg}_F999: a line without times`);
      writeFileSync(join(transDir, `${dlg}.txt`), tr.join('\r\n') + '\r\n');
      writeFileSync(join(transDir, `._${dlg}.txt`), 'macOS resource fork, not text');
      const wavDir = join(sess, 'sentences', 'wav', dlg);
      mkdirSync(wavDir, { recursive: true });
      for (const t of turns) {
        const id = `${dlg}_${t.suffix}`;
        if (t.label && id !== o.dropWav) writeFileSync(join(wavDir, `${id}.wav`), tinyWav());
      }
    }
  }
  return root;
}

const full = writeRelease('full');

test('reads the 4-class utterances in session, dialogue and time order', async () => {
  const c = await readIemocap(full);
  assert.equal(c.name, 'iemocap');
  assert.deepEqual(c.labels, ['ang', 'hap', 'sad', 'neu']);
  assert.equal(c.utterances.length, 35); // 7 per session
  const s1 = c.utterances.filter((u) => u.dialogue === 'Ses01F_impro01');
  assert.deepEqual(
    s1.map((u) => [u.id, u.label, u.turn]),
    [
      ['Ses01F_impro01_F000', 'neu', 0],
      ['Ses01F_impro01_M000', 'hap', 1], // exc merged into hap
      ['Ses01F_impro01_F001', 'ang', 2],
      ['Ses01F_impro01_M001', 'sad', 4], // the unlabelled MXX0 turn is position 3
      ['Ses01F_impro01_M003', 'hap', 8],
    ],
  );
  // xxx, fru and oth are left out.
  assert.ok(!c.utterances.some((u) => /_(F002|M002|F003)$/.test(u.id) && u.dialogue.endsWith('impro01')));
  const m000 = s1[1];
  assert.equal(m000.speaker, 'Ses01_M'); // the male speaker in a dialogue the woman leads
  assert.equal(m000.session, 'Ses01');
  assert.equal(m000.text, 'Do you have your forms?');
  assert.equal(m000.start, 2.5);
  assert.equal(m000.end, 3.5);
  assert.equal(
    m000.audioPath,
    join(full, 'Session1', 'sentences', 'wav', 'Ses01F_impro01', 'Ses01F_impro01_M000.wav'),
  );
  assert.deepEqual(
    [...new Set(c.utterances.map((u) => u.session))],
    ['Ses01', 'Ses02', 'Ses03', 'Ses04', 'Ses05'],
  );
  assert.equal(c.utterances[0].dialogue, 'Ses01F_impro01');
  assert.equal(c.utterances[5].dialogue, 'Ses01M_script01_1');
  const counts: Record<string, number> = {};
  for (const u of c.utterances) counts[u.label] = (counts[u.label] ?? 0) + 1;
  assert.deepEqual(counts, { neu: 10, hap: 10, ang: 5, sad: 10 });
});

test('dialogueTurns hold every transcribed turn in time order, noise lines left out', async () => {
  const c = await readIemocap(full);
  const turns = c.dialogueTurns!.get('Ses02F_impro01')!;
  assert.deepEqual(
    turns.map((t) => t.id.slice(-4)),
    IMPRO.map((t) => t.suffix),
  );
  assert.equal(turns[3].text, 'Hmm.');
  assert.equal(turns[3].speaker, 'Ses02_M');
  assert.equal(c.dialogueTurns!.size, 10);
  // History context reaches unlabelled turns too.
  const m001 = c.utterances.find((u) => u.id === 'Ses02F_impro01_M001')!;
  const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
  assert.deepEqual(historyFor(c, m001, { countTokens: words }), [
    'Excuse me.',
    'Do you have your forms?',
    'This is ridiculous!',
    'Hmm.',
  ]);
  assert.deepEqual(historyFor(c, c.utterances[0], { countTokens: words }), []);
});

test('counts that differ from the known table give one warning naming each', async () => {
  const c = await readIemocap(full);
  assert.equal(c.warnings.length, 1);
  const w = c.warnings[0];
  for (const part of [
    'total 35 (expected 5531)',
    'Ses01 7 (expected 1085)',
    'Ses05 7 (expected 1241)',
    'neu 10 (expected 1708)',
    'hap 10 (expected 1636)',
    'ang 5 (expected 1103)',
    'sad 10 (expected 1084)',
  ]) {
    assert.ok(w.includes(part), `warning lacks "${part}": ${w}`);
  }
  // The full table gives no warning; one differing count is named alone.
  const utts: Utterance[] = [];
  const labels = Object.entries(IEMOCAP_KNOWN_COUNTS.labels).flatMap(([l, n]) => Array<string>(n).fill(l));
  let k = 0;
  for (const [s, n] of Object.entries(IEMOCAP_KNOWN_COUNTS.sessions)) {
    for (let i = 0; i < n; i++)
      utts.push({
        id: `${s}_${i}`,
        audioPath: null,
        text: '',
        label: labels[k++],
        speaker: s,
        session: s,
        dialogue: s,
        turn: i,
      });
  }
  assert.deepEqual(checkIemocapCounts(utts), []);
  utts[0].label = 'hap';
  const one = checkIemocapCounts(utts);
  assert.equal(one.length, 1);
  assert.ok(one[0].includes('hap 1637 (expected 1636)'));
  assert.ok(!one[0].includes('Ses01'));
});

test("classes 'all' keeps fru but never xxx or oth", async () => {
  const c = await readIemocap(full, { classes: 'all' });
  assert.ok(c.labels.includes('fru'));
  assert.ok(c.utterances.some((u) => u.id === 'Ses03F_impro01_M002' && u.label === 'fru'));
  assert.ok(!c.utterances.some((u) => u.id.endsWith('impro01_F002') || u.id.endsWith('impro01_F003')));
  assert.equal(c.utterances.length, 40);
  assert.equal(c.warnings.length, 0); // the known table is for the 4-class set only
});

test('a missing session folder is an error naming it, or a warning when allowed', async () => {
  const root = writeRelease('no-s3', { omitSession: 3 });
  await assert.rejects(readIemocap(root), (e: Error) => e.message.includes(join(root, 'Session3')));
  const c = await readIemocap(root, { allowMissingSessions: true });
  assert.equal(c.utterances.length, 28);
  assert.ok(!c.utterances.some((u) => u.session === 'Ses03'));
  assert.ok(c.warnings.some((w) => w.includes('Session3')));
  assert.ok(c.warnings.some((w) => w.includes('Ses03 0 (expected 1151)')));
});

test('a labelled turn with no transcript is an error naming the file and turn, or skipped', async () => {
  const root = writeRelease('no-transcript', { dropTranscript: 'Ses04F_impro01_F001' });
  const evalFile = join(root, 'Session4', 'dialog', 'EmoEvaluation', 'Ses04F_impro01.txt');
  await assert.rejects(
    readIemocap(root),
    (e: Error) => e.message.includes(evalFile) && e.message.includes('Ses04F_impro01_F001'),
  );
  const c = await readIemocap(root, { onMissingTranscript: 'skip' });
  assert.equal(c.utterances.length, 34);
  assert.ok(
    c.warnings.some(
      (w) => w.startsWith('1 labelled turn(s) with no transcript') && w.includes('Ses04F_impro01_F001'),
    ),
  );
  // Positions come from the remaining transcribed turns.
  assert.equal(c.utterances.find((u) => u.id === 'Ses04F_impro01_M001')!.turn, 3);
});

test('a missing wav is an error naming the path, or skipped with a count', async () => {
  const root = writeRelease('no-wav', { dropWav: 'Ses05M_script01_1_M000' });
  const wav = join(root, 'Session5', 'sentences', 'wav', 'Ses05M_script01_1', 'Ses05M_script01_1_M000.wav');
  await assert.rejects(readIemocap(root), (e: Error) => e.message.includes(wav));
  const c = await readIemocap(root, { onMissingAudio: 'skip' });
  assert.equal(c.utterances.length, 34);
  assert.ok(c.warnings.some((w) => w.startsWith('1 labelled turn(s) with a missing wav') && w.includes(wav)));
});

test('a folder that is not a release is a clear error', async () => {
  await assert.rejects(readIemocap(join(tmp, 'nowhere')), /IEMOCAP folder not found/);
});
