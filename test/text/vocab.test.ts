import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { buildWordPieceVocab, saveTokenizerJson } from '../../src/text/vocab.js';
import { MELD_TRAIN, readMeldTrain } from './meld-csv.js';

type Vocab = Record<string, number>;
const vocabOf = (json: Record<string, unknown>): Vocab => (json.model as { vocab: Vocab }).vocab;

/** MELD train text when present, else a synthetic list (the test then says so). */
function corpus(t: { diagnostic: (m: string) => void }): string[] {
  const rows = readMeldTrain();
  if (rows) return rows.map((r) => r.text);
  t.diagnostic(`${MELD_TRAIN} is absent: building the vocabulary from synthetic sentences`);
  // Common words plus pseudo-words of 1-3 syllables, drawn with a skew like real text.
  const common = 'oh my god i can not believe you did that again we were on a break okay fine'.split(' ');
  const syl = 'ka to ri mel san do ve lin pu sho bra ent ion ing er qua zi'.split(' ');
  let seed = 1;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed / 2147483648);
  const pseudo = Array.from({ length: 1500 }, () =>
    Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => syl[Math.floor(rnd() * syl.length)]).join(''),
  );
  const vocab = [...common, ...pseudo];
  return Array.from({ length: 4000 }, () =>
    Array.from(
      { length: 4 + Math.floor(rnd() * 9) },
      () => vocab[Math.floor(vocab.length * rnd() ** 2)],
    ).join(' '),
  );
}

test('hand-checked merges: specials, alphabet with ## forms, then the most frequent pair', () => {
  // Words: "ab" x3, "abc" x1. Pairs: (a, ##b) 4 times, (##b, ##c) once.
  const json = buildWordPieceVocab(['ab ab ab abc'], { minFrequency: 2 });
  const v = vocabOf(json);
  assert.deepEqual(
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => v[t]),
    [0, 1, 2, 3, 4],
  );
  // Alphabet by frequency (a 4, b 4, c 1, then unseen printable ASCII), each with its ## form.
  assert.deepEqual(
    ['a', '##a', 'b', '##b', 'c', '##c'].map((t) => v[t]),
    [5, 6, 7, 8, 9, 10],
  );
  // Printable ASCII minus upper case (lowercased away): 94 - 26 = 68 characters, 2 entries each.
  const alphabetEnd = 5 + 2 * 68;
  assert.equal(v['ab'], alphabetEnd); // merged 4 times: in
  assert.equal(v['abc'], undefined); // (ab, ##c) occurs once < minFrequency 2: out
  assert.equal(Object.keys(v).length, alphabetEnd + 1);
  // With minFrequency 1 the second merge happens too.
  assert.equal(vocabOf(buildWordPieceVocab(['ab ab ab abc'], { minFrequency: 1 }))['abc'], alphabetEnd + 1);
  // The vocabulary stops at vocabSize.
  assert.equal(
    Object.keys(vocabOf(buildWordPieceVocab(['ab ab ab abc'], { vocabSize: alphabetEnd }))).length,
    alphabetEnd,
  );
  assert.throws(() => buildWordPieceVocab([], { vocabSize: 3 }), /vocabSize/);
});

test('lowercase=false keeps upper case characters and words', () => {
  const v = vocabOf(buildWordPieceVocab(['Hello Hello Hello'], { lowercase: false }));
  assert.ok(v['Hello'] !== undefined && v['H'] !== undefined && v['##H'] !== undefined);
  assert.equal(vocabOf(buildWordPieceVocab(['Hello Hello Hello']))['Hello'], undefined);
});

test('a vocabulary built from MELD text saves, loads and splits unseen words into pieces', async (t) => {
  const texts = corpus(t);
  const json = buildWordPieceVocab(texts, { vocabSize: 3000 });
  const v = vocabOf(json);
  const size = Object.keys(v).length;
  // MELD has merges enough to fill 3000; the small synthetic fallback may run out of pairs first.
  if (readMeldTrain()) assert.equal(size, 3000);
  else assert.ok(size > 200 && size <= 3000, `size ${size}`);
  assert.deepEqual(
    new Set(Object.values(v)),
    new Set(Array.from({ length: size }, (_, i) => i)),
    'ids are dense',
  );

  const dir = mkdtempSync(join(tmpdir(), 'lemer-vocab-'));
  const file = join(dir, 'tokenizer.json');
  saveTokenizerJson(json, file);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), json);
  const tok = await loadTokenizer(dir);
  assert.equal(tok.vocabSize, size);
  assert.deepEqual([tok.padId, tok.unkId, tok.clsId, tok.sepId], [0, 1, 2, 3]);

  // Frequent words are whole pieces.
  for (const w of ['okay', 'you']) assert.deepEqual(tok.tokenize(w), [w]);
  // Unseen words split into known pieces, never [UNK], and the pieces spell the word.
  for (const w of ['Zxqvbnm', 'flabbergastedness', 'antidisestablishmentarianism', 'Überkühlschrank']) {
    const pieces = tok.tokenize(w);
    assert.ok(!pieces.includes('[UNK]'), `${w}: ${pieces.join(' ')}`);
    assert.ok(pieces.slice(1).every((p) => p.startsWith('##')));
    const norm = w
      .toLowerCase()
      .normalize('NFD')
      .replace(/\p{Mn}/gu, '');
    assert.equal(pieces.map((p) => p.replace(/^##/, '')).join(''), norm);
  }
  // A sentence with history encodes into ids inside the vocabulary.
  const e = tok.encode('How you doin’?', { history: ['Hey Joey!', 'Oh. My. God.'] });
  assert.equal(e.ids[0], tok.clsId);
  assert.ok(e.ids.every((i) => i >= 0 && i < tok.vocabSize));
});

test('training is deterministic and independent of input order', (t) => {
  const texts = corpus(t).slice(0, 3000);
  const a = buildWordPieceVocab(texts, { vocabSize: 1500 });
  const b = buildWordPieceVocab([...texts].reverse(), { vocabSize: 1500 });
  assert.deepEqual(a, b);
});
