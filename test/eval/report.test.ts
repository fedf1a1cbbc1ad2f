import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { summarizeFolds } from '../../src/eval/metrics.js';
import { writeReport } from '../../src/eval/report.js';

const LABELS = ['ang', 'hap', 'sad', 'neu'];
// Fold 1: WA 4/6, recalls ang 2/3, hap 1/2, sad 1, neu none -> UA 13/18.
// Fold 2: WA 3/4, recalls ang 1, hap 1, sad 1/2 -> UA 5/6.
const SUMMARY = summarizeFolds(
  [
    { name: 'Ses01', yTrue: [0, 0, 0, 1, 1, 2], yPred: [0, 0, 1, 1, 2, 2] },
    { name: 'Ses02', yTrue: [0, 1, 2, 2], yPred: [0, 1, 2, 0] },
  ],
  LABELS,
);

test('writeReport writes markdown, JSON, SVG and PNG with the numbers in them', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'lemer-report-')), 'run1');
  const config = { model: 'lemer', fusion: 'constraint', mu: [1, 0.5, 0.2, 0.2] };
  const files = await writeReport(dir, SUMMARY, { title: 'LE-MER test', config });
  for (const f of Object.values(files)) assert.ok(existsSync(f), f);
  // Atomic writes leave no temporary files behind.
  assert.deepEqual(readdirSync(dir).sort(), ['confusion.png', 'confusion.svg', 'report.json', 'report.md']);

  // JSON round-trips; NaN (neu has no support) becomes null.
  const json = JSON.parse(readFileSync(files.json, 'utf8'));
  assert.equal(json.title, 'LE-MER test');
  assert.deepEqual(json.config, config);
  assert.deepEqual(
    json.summary,
    JSON.parse(JSON.stringify(SUMMARY, (_k, v) => (Number.isNaN(v) ? null : v))),
  );
  assert.equal(json.summary.folds[0].perClassRecall.neu, null);

  const md = readFileSync(files.markdown, 'utf8');
  assert.match(md, /^# LE-MER test/);
  assert.ok(md.includes('| Ses01 | 6 | 66.67 | 72.22 | 66.67 | 50.00 | 100.00 | – |'), md);
  assert.ok(md.includes('| Ses02 | 4 | 75.00 | 83.33 | 100.00 | 100.00 | 50.00 | – |'), md);
  // mean ± std: WA 17/24 ± 1/24, UA 7/9 ± 1/18.
  assert.ok(md.includes('| 70.83 ± 4.17 | 77.78 ± 5.56 |'), md);
  // pooled: confusion [[3,1,0,0],[0,2,1,0],[1,0,2,0],[0,0,0,0]], WA 7/10, UA (3/4 + 2/3 + 2/3) / 3.
  assert.ok(md.includes('| **pooled** | 10 | 70.00 | 69.44 | 75.00 | 66.67 | 66.67 | – |'), md);
  assert.ok(md.includes('| **ang** | 3 | 1 | 0 | 0 | 4 | 75.00 |'), md);
  assert.ok(md.includes('| **neu** | 0 | 0 | 0 | 0 | 0 | – |'), md);
  assert.ok(md.includes('### Ses02') && md.includes('fusion: constraint'), md);

  // The SVG is well-formed XML (resvg's parser rejects anything else) and holds the counts.
  const svg = readFileSync(files.svg, 'utf8');
  assert.doesNotThrow(() => new Resvg(svg));
  assert.throws(() => new Resvg('<svg xmlns="http://www.w3.org/2000/svg"><g></svg>'));
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  for (const label of [...LABELS, 'predicted', 'true'])
    assert.ok(texts.includes(label), `no ${label} in ${texts}`);
  const counts = texts.filter((t) => /^\d+$/.test(t)).map(Number);
  assert.deepEqual(
    counts.sort((a, b) => a - b),
    SUMMARY.pooled.confusion.flat().sort((a, b) => a - b),
  );
  assert.ok(texts.includes('75.0%'), 'row share of ang -> ang');

  const png = readFileSync(files.png);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  assert.ok(width > 300 && height > 300, `${width} x ${height}`);
  assert.ok(png.length > 10_000, `PNG only ${png.length} bytes`);
});

test('a report without config or title still writes, and escapes pipes in names', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lemer-report-'));
  const sum = summarizeFolds([{ name: 'a|b', yTrue: [0, 1], yPred: [1, 1] }], ['x', 'y']);
  const files = await writeReport(dir, sum);
  const md = readFileSync(files.markdown, 'utf8');
  assert.ok(md.includes('| a\\|b | 2 | 50.00 | 50.00 | 0.00 | 100.00 |'), md);
  assert.ok(!md.includes('## Configuration'));
});
