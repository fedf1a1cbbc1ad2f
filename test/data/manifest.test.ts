import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsv, readManifest } from '../../src/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-manifest-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
mkdirSync(join(tmp, 'clips'));
for (const n of ['a.wav', 'b.wav', 'c.wav']) writeFileSync(join(tmp, 'clips', n), 'RIFF');

function write(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

test('parseCsv: quotes, doubled quotes, commas and line breaks inside quotes, CRLF, BOM', () => {
  const text = '\ufeffa,b,c\r\n1,"x, y","say ""hi"""\r\n2,"two\nlines",\n\n3,plain "quote",""\n';
  assert.deepEqual(parseCsv(text), [
    { fields: ['a', 'b', 'c'], line: 1 },
    { fields: ['1', 'x, y', 'say "hi"'], line: 2 },
    { fields: ['2', 'two\nlines', ''], line: 3 },
    { fields: ['3', 'plain "quote"', ''], line: 6 }, // line 4 ends the quoted field, line 5 is blank
  ]);
  assert.deepEqual(parseCsv('x,y'), [{ fields: ['x', 'y'], line: 1 }]); // no final newline
  assert.deepEqual(parseCsv('a\n"q\r\nq"'), [
    { fields: ['a'], line: 1 },
    { fields: ['q\r\nq'], line: 2 },
  ]);
});

test('parseCsv: malformed quoting is an error naming the file and line', () => {
  assert.throws(() => parseCsv('a,b\n1,"open\n2,3\n', 'm.csv'), /m\.csv:2: quoted field never closed/);
  assert.throws(
    () => parseCsv('a,b\n\n1,"x"y\n', 'm.csv'),
    /m\.csv:3: unexpected text after a closing quote/,
  );
});

test('parseCsv is csv-parse (a declared dependency); record lines stay right past CRLFs inside quotes', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  assert.ok(pkg.dependencies['csv-parse'], 'csv-parse in dependencies');
  const text = 'a,b\r\n"x\r\ny\r\nz",1\r\n\r\n"é\r\n",2\r\nlast,3';
  assert.deepEqual(
    parseCsv(text).map((r) => r.line),
    [1, 2, 6, 8],
  );
  assert.throws(
    () => parseCsv(`${text}\r\n"x"y,4\r\n`, 'm.csv'),
    /m\.csv:9: unexpected text after a closing quote/,
  );
});

test('CSV manifest: columns, relative audio, quoted text, defaults, sorted labels', async () => {
  const p = write(
    'corpus.csv',
    [
      'ID,Audio,Text,Label,Speaker,Fold,Dialogue,Turn',
      'u1,clips/a.wav,"Well, ""fine"".",sad,spk1,f1,d1,1',
      'u2,clips/b.wav,"Two\nlines",ang,spk2,f2,d1,0',
      'u3,,text only,neu,,,,',
      `u4,${join(tmp, 'clips', 'c.wav')},,ang,spk1,,,`,
    ].join('\n') + '\n',
  );
  const c = await readManifest(p);
  assert.equal(c.name, 'corpus');
  assert.deepEqual(c.labels, ['ang', 'neu', 'sad']);
  assert.deepEqual(c.warnings, []);
  const [u1, u2, u3, u4] = c.utterances;
  assert.deepEqual(u1, {
    id: 'u1',
    audioPath: join(tmp, 'clips', 'a.wav'),
    text: 'Well, "fine".',
    label: 'sad',
    speaker: 'spk1',
    session: 'f1', // the fold column is the session key
    dialogue: 'd1',
    turn: 1,
  });
  assert.equal(u2.text, 'Two\nlines');
  assert.equal(u2.turn, 0);
  assert.deepEqual(
    { audio: u3.audioPath, speaker: u3.speaker, session: u3.session, dialogue: u3.dialogue, turn: u3.turn },
    { audio: null, speaker: 'unknown', session: 'unknown', dialogue: 'u3', turn: 0 },
  );
  assert.equal(u4.audioPath, join(tmp, 'clips', 'c.wav')); // absolute paths kept
  assert.equal(u4.text, '');
  assert.equal(u4.session, 'spk1'); // session defaults to the speaker
});

test('JSONL manifest: same fields, numbers accepted, turn defaults to order within the dialogue', async () => {
  const p = write(
    'corpus.jsonl',
    [
      JSON.stringify({
        id: 1,
        audio: 'clips/a.wav',
        text: 'hello',
        label: 'hap',
        speaker: 's',
        session: 'S1',
        dialogue: 'd',
      }),
      '',
      JSON.stringify({ id: 2, text: 'again', label: 'neu', speaker: 's', session: 'S1', dialogue: 'd' }),
      JSON.stringify({ id: 3, text: 'other', label: 'neu', session: 'S2', extra: true }),
    ].join('\n'),
  );
  const c = await readManifest(p, { labels: ['neu', 'hap'] });
  assert.deepEqual(c.labels, ['neu', 'hap']);
  assert.deepEqual(
    c.utterances.map((u) => [u.id, u.dialogue, u.turn, u.session]),
    [
      ['1', 'd', 0, 'S1'],
      ['2', 'd', 1, 'S1'],
      ['3', '3', 0, 'S2'],
    ],
  );
  assert.equal(c.utterances[0].audioPath, join(tmp, 'clips', 'a.wav'));
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0], /unknown column\(s\) extra/);
});

test('manifest errors name the file, the line and the problem', async () => {
  const cases: [string, string, RegExp][] = [
    [
      'dup.csv',
      'id,text,label\na,x,neu\nb,y,neu\na,z,neu\n',
      /dup\.csv:4: duplicate id "a" \(first on line 2\)/,
    ],
    [
      'nolabel.jsonl',
      '{"id":"a","text":"x","label":"neu"}\n{"id":"b","text":"y"}\n',
      /nolabel\.jsonl:2: missing "label"/,
    ],
    ['empty.csv', 'id,text,label\na,,neu\n', /empty\.csv:2: id "a" has neither "audio" nor "text"/],
    ['badjson.jsonl', '{"id":"a","text":"x","label":"neu"}\n{"id":\n', /badjson\.jsonl:2: not valid JSON/],
    ['width.csv', 'id,text,label\na,x\n', /width\.csv:2: 2 fields, but the header has 3/],
    [
      'noaudio.csv',
      'id,audio,label\na,clips/none.wav,neu\n',
      /noaudio\.csv:2: audio file of "a" not found: .*none\.wav/,
    ],
    ['turn.csv', 'id,text,label,turn\na,x,neu,-1\n', /turn\.csv:2: "turn" must be a whole number/],
    ['format.txt', 'id\n', /unknown manifest format/],
  ];
  for (const [name, text, re] of cases) {
    const p = write(name, text);
    await assert.rejects(readManifest(p), (e: Error) => re.test(e.message) && e.message.includes(p), name);
  }
  const p = write('labels.csv', 'id,text,label\na,x,neu\nb,"multi\nline",sad\nc,y,happy\n');
  await assert.rejects(readManifest(p, { labels: ['neu', 'sad'] }), (e: Error) =>
    e.message.includes(`${p}:5: label "happy" is not in the label set [neu, sad]`),
  );
  await assert.rejects(
    readManifest(join(tmp, 'missing.csv')),
    /missing\.csv: cannot read manifest \(ENOENT\)/,
  );
});
