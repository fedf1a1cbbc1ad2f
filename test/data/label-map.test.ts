import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { applyLabelMap, loadCorpus, parseLabelMap } from '../../src/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-labelmap-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// A 7-class text manifest with its own label names.
const SEVEN = ['Joyful', 'Mad', 'Sad', 'Neutral', 'Excited', 'Scared', 'Surprised'];
const COUNTS = [3, 2, 2, 4, 2, 1, 1];
const manifest = join(tmp, 'seven.jsonl');
writeFileSync(
  manifest,
  SEVEN.flatMap((l, k) =>
    Array.from({ length: COUNTS[k]! }, (_, i) =>
      JSON.stringify({ id: `${l}${i}`, text: `t ${i}`, label: l }),
    ),
  ).join('\n') + '\n',
);

test('parseLabelMap: from=to pairs; many to one; malformed and repeated keys are errors', () => {
  assert.deepEqual(parseLabelMap('Joyful=hap, Mad=ang,Sad=sad,Neutral=neu'), {
    Joyful: 'hap',
    Mad: 'ang',
    Sad: 'sad',
    Neutral: 'neu',
  });
  assert.deepEqual(parseLabelMap('exc=hap,hap=hap'), { exc: 'hap', hap: 'hap' });
  assert.throws(() => parseLabelMap(''), /label map "" is empty/);
  assert.throws(() => parseLabelMap('Joyful:hap'), /"Joyful:hap" is not of the form from=to/);
  assert.throws(() => parseLabelMap('a=b=c'), /"a=b=c" is not of the form from=to/);
  assert.throws(() => parseLabelMap('Mad=ang,Mad=hap'), /label "Mad" is mapped twice/);
});

test('a 4-class view of a 7-class manifest: renamed, only mapped labels kept, dropped counted per label', async () => {
  const warnings: string[] = [];
  const c = await loadCorpus(`manifest:${manifest}`, {
    labelMap: parseLabelMap('Joyful=hap,Mad=ang,Sad=sad,Neutral=neu'),
    onWarning: (w) => warnings.push(w),
  });
  assert.deepEqual(c.labels, ['hap', 'ang', 'sad', 'neu']); // the map's order
  assert.equal(c.utterances.length, 11);
  assert.deepEqual(
    c.labels.map((l) => c.utterances.filter((u) => u.label === l).length),
    [3, 2, 2, 4],
  );
  assert.equal(c.utterances.find((u) => u.id === 'Mad1')!.label, 'ang');
  assert.deepEqual(c.labelMap!.dropped, { Excited: 2, Scared: 1, Surprised: 1 });
  assert.deepEqual(warnings, [
    'label map: 4 utterance(s) with unmapped labels left out (Excited 2, Scared 1, Surprised 1)',
  ]);
  // With --labels too: the label set (and order) is theirs; each target must be in it.
  const ordered = await loadCorpus(`manifest:${manifest}`, {
    labelMap: { Joyful: 'hap', Excited: 'hap', Mad: 'ang' },
    labels: ['ang', 'hap', 'sad'],
  });
  assert.deepEqual(ordered.labels, ['ang', 'hap', 'sad']);
  assert.equal(ordered.utterances.filter((u) => u.label === 'hap').length, 5);
  await assert.rejects(
    loadCorpus(`manifest:${manifest}`, { labelMap: { Joyful: 'hap', Mad: 'ang' }, labels: ['hap'] }),
    /label map: target label\(s\) ang not in the label set \[hap\]/,
  );
  // Without a map, --labels on a manifest still refuses a label outside the set.
  await assert.rejects(loadCorpus(`manifest:${manifest}`, { labels: ['Joyful'] }), /not in the label set/);
});

test('a label-map key the corpus does not have is an error naming the corpus labels', () => {
  const corpus = { name: 'x', labels: ['a', 'b'], utterances: [], warnings: [] };
  assert.throws(
    () => applyLabelMap(corpus, { a: 'p', Joyfull: 'q' }),
    /label map: corpus x has no label\(s\) Joyfull \(its labels: a, b\)/,
  );
});

test("built-in corpora: a label map reads all classes (EmoDB's boredom merged into neutral)", async (t) => {
  const dir = resolve('../shared/data/emodb');
  if (!existsSync(dir)) {
    t.skip(`EmoDB not found at ${dir}`);
    return;
  }
  const c = await loadCorpus(`emodb:${dir}`, { labelMap: { neu: 'neu', bor: 'neu', ang: 'ang' } });
  assert.deepEqual(c.labels, ['neu', 'ang']);
  assert.equal(c.utterances.filter((u) => u.label === 'neu').length, 79 + 81);
  assert.deepEqual(c.labelMap!.dropped, { hap: 71, sad: 62, dis: 46, fea: 69 });
});
