import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readEmodb } from '../../src/data/index.js';

const REAL = resolve('../shared/data/emodb');
const tmp = mkdtempSync(join(tmpdir(), 'lemer-emodb-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('real EmoDB: 339 files in 4 classes, 535 in all, 10 speakers, transcripts', async (t) => {
  if (!existsSync(REAL)) {
    t.skip(`EmoDB not found at ${REAL} (see shared/data/README.md)`);
    return;
  }
  const four = await readEmodb(REAL, { classes: '4' });
  assert.equal(four.utterances.length, 339);
  assert.deepEqual(four.labels, ['ang', 'hap', 'sad', 'neu']);
  assert.deepEqual(four.warnings, []);
  const count = (l: string) => four.utterances.filter((u) => u.label === l).length;
  assert.deepEqual([count('ang'), count('hap'), count('sad'), count('neu')], [127, 71, 62, 79]);

  const all = await readEmodb(REAL, { classes: 'all' });
  assert.equal(all.utterances.length, 535);
  const speakers = [...new Set(all.utterances.map((u) => u.speaker))].sort();
  assert.deepEqual(speakers, ['03', '08', '09', '10', '11', '12', '13', '14', '15', '16']);
  const u = all.utterances.find((x) => x.id === '03a01Fa')!;
  assert.equal(u.text, 'Der Lappen liegt auf dem Eisschrank.');
  assert.equal(u.label, 'hap');
  assert.equal(u.session, '03');
  assert.equal(u.dialogue, '03a01Fa');
  assert.equal(u.audioPath, join(REAL, 'wav', '03a01Fa.wav'));
  assert.ok(existsSync(u.audioPath!));
  const byLetter = (l: string) => all.utterances.filter((x) => x.label === l).length;
  assert.deepEqual([byLetter('bor'), byLetter('dis'), byLetter('fea')], [81, 46, 69]);
});

test('fake EmoDB: letters to labels, umlauts, odd names warned, unknown codes are errors', async () => {
  const dir = join(tmp, 'emodb', 'wav');
  mkdirSync(dir, { recursive: true });
  for (const n of ['03a04Wa.wav', '08b01Lb.wav', '16b10Nc.wav', 'notes.txt', 'README.wav'])
    writeFileSync(join(dir, n), 'RIFF');
  const four = await readEmodb(join(tmp, 'emodb'));
  assert.deepEqual(
    four.utterances.map((u) => [u.id, u.label, u.speaker]),
    [
      ['03a04Wa', 'ang', '03'],
      ['16b10Nc', 'neu', '16'],
    ],
  );
  assert.equal(four.utterances[0].text, 'Heute abend könnte ich es ihm sagen.');
  assert.match(four.warnings[0], /^1 wav file\(s\) not named SSTTTEV\.wav skipped .*README\.wav/);
  // The wav folder itself works as the root too.
  const all = await readEmodb(dir, { classes: 'all' });
  assert.equal(
    all.utterances.find((u) => u.id === '08b01Lb')!.text,
    'Was sind denn das für Tüten, die da unter dem Tisch stehen?',
  );
  assert.equal(all.utterances.length, 3);

  writeFileSync(join(dir, '03c01Wa.wav'), 'RIFF');
  await assert.rejects(readEmodb(dir), /03c01Wa\.wav: unknown EmoDB sentence code "c01"/);
  rmSync(join(dir, '03c01Wa.wav'));
  writeFileSync(join(dir, '03a01Xa.wav'), 'RIFF');
  await assert.rejects(readEmodb(dir), /03a01Xa\.wav: unknown EmoDB emotion letter "X"/);
  await assert.rejects(readEmodb(join(tmp, 'none')), /EmoDB folder not readable/);
});
