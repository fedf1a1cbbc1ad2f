import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer, padBatch, tokenizerFromJson, type TextTokenizer } from '../../src/text/tokenizer.js';

// A hand-made BERT vocab.txt: line number = id.
const VOCAB = [
  '[PAD]', // 0
  '[UNK]', // 1
  '[CLS]', // 2
  '[SEP]', // 3
  '[MASK]', // 4
  'one', // 5
  'two', // 6
  'three', // 7
  'four', // 8
  'five', // 9
  'six', // 10
  'seven', // 11
  'hello', // 12
  'world', // 13
  '##s', // 14
  ',', // 15
  '!', // 16
  '中', // 17
  '文', // 18
  'un', // 19
  '##believ', // 20
  '##able', // 21
];
const id = (t: string): number => VOCAB.indexOf(t);

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'lemer-tok-'));
}

async function vocabTxtTokenizer(config?: object): Promise<{ dir: string; tok: TextTokenizer }> {
  const dir = tmp();
  writeFileSync(join(dir, 'vocab.txt'), VOCAB.join('\n') + '\n');
  if (config) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return { dir, tok: await loadTokenizer(dir) };
}

test('a vocab.txt folder loads as BERT-uncased: lowercase, accents, punctuation, CJK, pieces, [UNK]', async () => {
  const { tok } = await vocabTxtTokenizer();
  assert.equal(tok.vocabSize, VOCAB.length);
  assert.deepEqual([tok.padId, tok.unkId, tok.clsId, tok.sepId], [0, 1, 2, 3]);
  assert.deepEqual(tok.tokenize('Héllo, WORLDS!'), ['hello', ',', 'world', '##s', '!']);
  assert.deepEqual(tok.tokenize('中文'), ['中', '文']);
  assert.deepEqual(tok.tokenize('Unbelievable'), ['un', '##believ', '##able']);
  assert.deepEqual(tok.tokenize('xyz hello'), ['[UNK]', 'hello']);
  assert.equal(tok.countTokens('Unbelievable, worlds'), 6);
  assert.deepEqual(tok.encodeText('hello worlds'), [12, 13, 14]);
  // Without history: [CLS] current [SEP], all type 0.
  assert.deepEqual(tok.encode('Hello world'), {
    ids: [2, 12, 13, 3],
    typeIds: [0, 0, 0, 0],
    currentStart: 1,
    currentEnd: 3,
  });
});

test('tokenizer_config.json do_lower_case=false keeps case', async () => {
  const { tok } = await vocabTxtTokenizer({ do_lower_case: false });
  assert.deepEqual(tok.tokenize('Hello hello'), ['[UNK]', 'hello']);
});

test('encode lays out [CLS] history [SEP] current [SEP] with type ids 0 / 1', async () => {
  const { tok } = await vocabTxtTokenizer();
  const e = tok.encode('six seven', { history: ['one two', 'three four five'] });
  assert.deepEqual(e.ids, [2, 5, 6, 7, 8, 9, 3, 10, 11, 3]);
  assert.deepEqual(e.typeIds, [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  assert.equal(e.currentStart, 7);
  assert.equal(e.currentEnd, 9);
  assert.deepEqual(e.ids.slice(e.currentStart, e.currentEnd), [id('six'), id('seven')]);
  // Empty history turns are no history.
  assert.deepEqual(tok.encode('six seven', { history: ['', '  '] }).ids, [2, 10, 11, 3]);
});

test('truncation: oldest whole turns first, then history from the front, then the current tail', async () => {
  const { tok } = await vocabTxtTokenizer();
  const history = ['one two', 'three four five']; // 2 + 3 tokens; current 'six seven' = 2; pair specials = 3
  const enc = (maxLength: number): number[] => tok.encode('six seven', { history, maxLength }).ids;
  // 10 fits exactly.
  assert.deepEqual(enc(10), [2, 5, 6, 7, 8, 9, 3, 10, 11, 3]);
  // 9: history budget 4 < 5: the oldest turn goes whole (not just one of its tokens).
  assert.deepEqual(enc(9), [2, 7, 8, 9, 3, 10, 11, 3]);
  // 7: budget 2: the last turn alone is too long, so it is cut from its front.
  assert.deepEqual(enc(7), [2, 8, 9, 3, 10, 11, 3]);
  // 6: budget 1.
  assert.deepEqual(enc(6), [2, 9, 3, 10, 11, 3]);
  // 5: no room for history: [CLS] current [SEP], current intact, all type 0.
  const e5 = tok.encode('six seven', { history, maxLength: 5 });
  assert.deepEqual(e5, { ids: [2, 10, 11, 3], typeIds: [0, 0, 0, 0], currentStart: 1, currentEnd: 3 });
  // 3: only now is the current utterance cut, at its tail.
  const e3 = tok.encode('six seven', { history, maxLength: 3 });
  assert.deepEqual(e3, { ids: [2, 10, 3], typeIds: [0, 0, 0], currentStart: 1, currentEnd: 2 });
  // Without history the tail is cut the same way.
  assert.deepEqual(tok.encode('one two three four', { maxLength: 4 }).ids, [2, 5, 6, 3]);
  assert.throws(() => tok.encode('six', { maxLength: 2 }), /maxLength/);
});

test('default maxLength is 150 and the current utterance survives long history', async () => {
  const { tok } = await vocabTxtTokenizer();
  const turn = Array(40).fill('one').join(' ');
  const e = tok.encode('six seven', { history: [turn, turn, turn, turn, turn] });
  // 5 x 40 = 200 history tokens, budget 150 - 3 - 2 = 145: two whole turns dropped (120 left), none cut.
  assert.equal(e.ids.length, 1 + 120 + 1 + 2 + 1);
  assert.equal(e.currentStart, 1 + 120 + 1);
  assert.deepEqual(e.ids.slice(-3), [10, 11, 3]);
  // One 200-token turn: cut from its front to exactly fill 150.
  const long = tok.encode('six seven', { history: [Array(199).fill('one').join(' ') + ' two'] });
  assert.equal(long.ids.length, 150);
  assert.deepEqual(long.ids.slice(144, 150), [5, 6, 3, 10, 11, 3]);
});

test('padBatch pads right into int64 ids / type ids and a float mask, row-major', async () => {
  const { tok } = await vocabTxtTokenizer();
  const a = tok.encode('six', { history: ['one'] }); // [CLS] one [SEP] six [SEP]
  const b = tok.encode('two'); // [CLS] two [SEP]
  const p = padBatch([a, b], tok.padId);
  assert.deepEqual(p.shape, [2, 5]);
  assert.ok(
    p.ids instanceof BigInt64Array && p.typeIds instanceof BigInt64Array && p.mask instanceof Float32Array,
  );
  assert.deepEqual([...p.ids], [2n, 5n, 3n, 10n, 3n, 2n, 6n, 3n, 0n, 0n]);
  assert.deepEqual([...p.typeIds], [0n, 0n, 0n, 1n, 1n, 0n, 0n, 0n, 0n, 0n]);
  assert.deepEqual([...p.mask], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual([...p.currentMask], [0, 0, 0, 1, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual([...p.lengths], [5, 3]);
  assert.deepEqual(padBatch([b], 0, { padTo: 6 }).shape, [1, 6]);
  assert.throws(() => padBatch([a], 0, { padTo: 4 }), /padTo/);
  assert.throws(() => padBatch([], 0), /empty/);
});

test('a tokenizer.json file and a folder holding one load alike', async () => {
  const { tok: fromTxt } = await vocabTxtTokenizer();
  const dir = tmp();
  const vocab = Object.fromEntries(VOCAB.map((t, i) => [t, i]));
  // A BertProcessing post-processor (older tokenizer.json files) gives the same layout.
  const json = {
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', cls: ['[CLS]', 2], sep: ['[SEP]', 3] },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', vocab },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  for (const p of [dir, join(dir, 'tokenizer.json')]) {
    const tok = await loadTokenizer(p);
    const opts = { history: ['hello world'] };
    assert.deepEqual(tok.encode('Unbelievable!', opts), fromTxt.encode('Unbelievable!', opts));
  }
  assert.equal(tokenizerFromJson(json).sepId, 3);
});

test('bad input: errors name the file and the problem', async () => {
  const dir = tmp();
  await assert.rejects(loadTokenizer(join(dir, 'nope')), (e: Error) => e.message.includes(join(dir, 'nope')));
  await assert.rejects(loadTokenizer(dir), /holds neither tokenizer\.json nor vocab\.txt/);

  const corrupt = join(dir, 'tokenizer.json');
  writeFileSync(corrupt, '{"model": {"type": "WordPiece", "vocab": {');
  await assert.rejects(
    loadTokenizer(corrupt),
    (e: Error) => e.message.includes(corrupt) && /not valid JSON/.test(e.message),
  );
  await assert.rejects(loadTokenizer(dir), (e: Error) => e.message.includes(corrupt));

  writeFileSync(corrupt, '{"version": "1.0"}');
  await assert.rejects(
    loadTokenizer(corrupt),
    (e: Error) => e.message.includes(corrupt) && /no "model"/.test(e.message),
  );

  const noSep = join(tmp(), 'vocab.txt');
  writeFileSync(noSep, '[PAD]\n[UNK]\n[CLS]\nhello\n');
  await assert.rejects(
    loadTokenizer(noSep),
    (e: Error) => e.message.includes(noSep) && e.message.includes('[SEP]'),
  );

  const badConfigDir = tmp();
  writeFileSync(join(badConfigDir, 'vocab.txt'), VOCAB.join('\n'));
  writeFileSync(join(badConfigDir, 'tokenizer_config.json'), 'nope');
  await assert.rejects(loadTokenizer(badConfigDir), /tokenizer_config\.json: not valid JSON/);
});

test('a vocab.txt with invalid UTF-8 is an error naming the file and line, not U+FFFD tokens', async () => {
  const dir = tmp();
  const file = join(dir, 'vocab.txt');
  writeFileSync(
    file,
    Buffer.concat([
      Buffer.from(VOCAB.slice(0, 5).join('\n') + '\ncaf'),
      Buffer.from([0xe9]),
      Buffer.from('\n'),
    ]),
  );
  await assert.rejects(loadTokenizer(dir), (e: Error) =>
    e.message.startsWith(`${file}:6: invalid UTF-8 (byte 0xe9 at column 4)`),
  );
});
