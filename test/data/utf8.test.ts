import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeUtf8,
  invalidUtf8Lines,
  loadCorpus,
  readIemocap,
  readManifest,
  readMeld,
} from '../../src/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-utf8-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Text with raw bytes spliced in: strings are UTF-8, numbers are single bytes. */
function bytes(...parts: (string | number[])[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
}

test('decodeUtf8: valid text passes (BOM dropped); invalid bytes name the line and column, or warn', () => {
  assert.deepEqual(decodeUtf8(bytes('\ufeffcafé ✓ 😀\n'), 'f.txt'), { text: 'café ✓ 😀\n' });
  const bad = bytes('ok\nalso ok\nbad ', [0xff], ' here\nfine\n', [0xc3, 0x28], '\n');
  assert.throws(
    () => decodeUtf8(bad, 'f.txt'),
    /^Error: f\.txt:3: invalid UTF-8 \(byte 0xff at column 5; 2 lines in all\): save the file as UTF-8, or read it with U\+FFFD .*--invalid-utf8 warn/,
  );
  const w = decodeUtf8(bad, 'f.txt', 'warn');
  assert.equal(w.text, 'ok\nalso ok\nbad \ufffd here\nfine\n\ufffd(\n');
  assert.equal(
    w.warning,
    'f.txt: 2 lines with invalid UTF-8 read with U+FFFD for the bad bytes (lines 3, 5)',
  );
  // Overlong forms, surrogates, truncated sequences and stray continuation bytes are all invalid.
  for (const b of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80], [0xf4, 0x90, 0x80, 0x80]]) {
    assert.deepEqual(invalidUtf8Lines(bytes('x', b)), [{ line: 1, column: 2, byte: b[0] }], `bytes ${b}`);
  }
});

test('manifest (JSONL and CSV): invalid UTF-8 is an error naming file and line; warn reads it with a count', async () => {
  const jsonl = join(tmp, 'm.jsonl');
  writeFileSync(
    jsonl,
    bytes(
      '{"id":"u1","text":"fine","label":"ang"}\n',
      '{"id":"u2","text":"bad ',
      [0xe9],
      't\u00e9","label":"hap"}\n',
    ),
  );
  await assert.rejects(readManifest(jsonl), (e: Error) =>
    e.message.startsWith(`${jsonl}:2: invalid UTF-8 (byte 0xe9`),
  );
  const c = await readManifest(jsonl, { invalidUtf8: 'warn' });
  assert.equal(c.utterances[1]!.text, 'bad \ufffdt\u00e9');
  assert.deepEqual(c.warnings, [
    `${jsonl}: 1 line with invalid UTF-8 read with U+FFFD for the bad bytes (line 2)`,
  ]);

  const csv = join(tmp, 'm.csv');
  writeFileSync(csv, bytes('id,text,label\nu1,"two\nlines",ang\nu2,', [0x92], 's,hap\n'));
  await assert.rejects(
    readManifest(csv),
    new RegExp(`^Error: ${csv.replace(/[.]/g, '\\.')}:4: invalid UTF-8`),
  );
  const viaSpec = await loadCorpus(`manifest:${csv}`, { invalidUtf8: 'warn' });
  assert.equal(viaSpec.utterances[1]!.text, '\ufffds');
  assert.equal(viaSpec.warnings.length, 1);
});

const HEADER =
  'Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime';

test('MELD: a UTF-8 file with a bad byte fails naming the line (or warns); an all-cp1252 file is still read as cp1252', async () => {
  const dir = join(tmp, 'meld');
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'train_sent_emo.csv'),
    bytes(
      `${HEADER}\n1,I’m fine.,Joey,neutral,neutral,0,0,1,1,a,b\n`,
      '2,bad ',
      [0xff],
      ' byte,Ross,joy,positive,0,1,1,1,a,b\n',
    ),
  );
  await assert.rejects(readMeld(dir), /train_sent_emo\.csv:3: invalid UTF-8 \(byte 0xff at column 7\)/);
  const c = await readMeld(dir, { invalidUtf8: 'warn' });
  assert.deepEqual(
    c.utterances.map((u) => u.text),
    ['I’m fine.', 'bad \ufffd byte'],
  );
  assert.match(
    c.warnings[0]!,
    /train_sent_emo\.csv: 1 line with invalid UTF-8 read with U\+FFFD .*\(line 3\)/,
  );
  // No UTF-8 at all: a Windows-1252 copy (the warning now says which line first has such bytes).
  writeFileSync(
    join(dir, 'dev_sent_emo.csv'),
    bytes(`${HEADER}\n1,I`, [0x92], 'm fine.,Joey,neutral,neutral,0,0,1,1,a,b\n'),
  );
  const d = await readMeld(dir, { split: 'dev' });
  assert.equal(d.utterances[0]!.text, 'I’m fine.');
  assert.match(
    d.warnings[0]!,
    /not valid UTF-8, read as Windows-1252 \(1 line\(s\) with non-UTF-8 bytes, first: line 2\)/,
  );
});

test('IEMOCAP: invalid UTF-8 in a transcript or an evaluation file names the file and line', async () => {
  const root = join(tmp, 'iemocap');
  const sess = join(root, 'Session1');
  const evalDir = join(sess, 'dialog', 'EmoEvaluation');
  const transDir = join(sess, 'dialog', 'transcriptions');
  const wavDir = join(sess, 'sentences', 'wav', 'Ses01F_impro01');
  for (const d of [evalDir, transDir, wavDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(wavDir, 'Ses01F_impro01_F000.wav'), 'RIFF');
  writeFileSync(
    join(evalDir, 'Ses01F_impro01.txt'),
    '% header\n\n[1.0000 - 2.0000]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]\n',
  );
  const trans = join(transDir, 'Ses01F_impro01.txt');
  writeFileSync(trans, bytes('Ses01F_impro01_F000 [001.0000-002.0000]: Excuse ', [0xe9], 'me.\r\n'));
  await assert.rejects(readIemocap(root, { sessions: [1] }), (e: Error) =>
    e.message.startsWith(`${trans}:1: invalid UTF-8 (byte 0xe9 at column 49)`),
  );
  const c = await readIemocap(root, { sessions: [1], invalidUtf8: 'warn', classes: 'all' });
  assert.equal(c.utterances[0]!.text, 'Excuse \ufffdme.');
  assert.ok(c.warnings.some((w) => w.startsWith(`${trans}: 1 line with invalid UTF-8`)));
  writeFileSync(trans, 'Ses01F_impro01_F000 [001.0000-002.0000]: Excuse me.\n');
  const ev = join(evalDir, 'Ses01F_impro01.txt');
  writeFileSync(
    ev,
    bytes(
      '% header\n\n[1.0000 - 2.0000]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]\nC-E2:\tNeutral; (',
      [0xfe],
      ')\n',
    ),
  );
  await assert.rejects(readIemocap(root, { sessions: [1] }), (e: Error) =>
    e.message.startsWith(`${ev}:4: invalid UTF-8`),
  );
});
