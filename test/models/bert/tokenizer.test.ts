// The fixtures' tokenizers through src/text/tokenizer.ts: BERT's vocab.txt and RoBERTa's
// byte-level BPE tokenizer.json (RobertaProcessing layout: <s> A </s></s> B </s>, types 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTokenizer } from '../../../src/text/tokenizer.js';
import { fixtureDir } from './helpers.js';

test('RoBERTa byte-level BPE: merges, Ġ for spaces, the RoBERTa layout with history', async () => {
  const tok = await loadTokenizer(fixtureDir('roberta-tiny'));
  assert.deepEqual(tok.tokenize('the cat'), ['the', 'Ġ', 'c', 'a', 't']);
  assert.deepEqual(tok.tokenize('in the'), ['in', 'Ġthe']);
  assert.equal(tok.padId, 1);
  assert.equal(tok.clsId, 0);
  assert.equal(tok.sepId, 2);
  assert.equal(tok.unkId, 3);
  const cur = tok.encodeText('no');
  const hist = tok.encodeText('hi');
  const e = tok.encode('no', { history: ['hi'] });
  assert.deepEqual(e.ids, [0, ...hist, 2, 2, ...cur, 2]);
  assert.deepEqual(
    e.typeIds,
    e.ids.map(() => 0),
  );
  assert.deepEqual(e.ids.slice(e.currentStart, e.currentEnd), cur);
  assert.ok(Math.max(...e.ids) < 105, 'ids fit the fixture model (vocab_size 105)');
});

test('BERT vocab.txt: [CLS] history [SEP] current [SEP], types 0 then 1', async () => {
  const tok = await loadTokenizer(fixtureDir('bert-tiny'));
  const e = tok.encode('i love you', { history: ['why'] });
  assert.deepEqual(
    e.ids.map((i) => tok.idToToken(i)),
    ['[CLS]', 'why', '[SEP]', 'i', 'love', 'you', '[SEP]'],
  );
  assert.deepEqual(e.typeIds, [0, 0, 0, 1, 1, 1, 1]);
});
