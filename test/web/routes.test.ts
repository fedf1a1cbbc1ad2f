/**
 * What `lemer serve` hands a browser, without one: the page, its bundles (free of Node's
 * modules), onnxruntime-web's WASM, and the model folder's files only (read-only, nothing
 * outside the folder); and `npm run build:web`'s output folder.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from '../../src/serve/index.js';
import { startServer } from '../serve/helpers.js';
// @ts-expect-error: a JavaScript build script, without type declarations
import { buildWeb } from '../../scripts/build-web.mjs';

let server: Server;
let url: string;
let dir: string;

before(async () => {
  ({ server, url, dir } = await startServer());
});
after(async () => {
  await server.close();
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${url}${path}`, { headers });

async function expectNotFound(path: string): Promise<void> {
  const r = await get(path);
  assert.equal(r.status, 404, path);
  assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'not_found', path);
}

test('the page, its bundles and stylesheet', async () => {
  const page = await get('/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /connect-src 'self'/);
  const html = await page.text();
  assert.match(html, /id="predict-browser"/);
  for (const asset of ['/web/lemer-web.js', '/web/model-wasm.js', '/web/model-webgpu.js']) {
    const r = await get(asset);
    assert.equal(r.status, 200, asset);
    assert.match(r.headers.get('content-type') ?? '', /^text\/javascript/);
    const js = await r.text();
    // Node's modules are stubbed, not imported: a browser could not load them.
    assert.doesNotMatch(js, /from\s*["']node:|import\(["']node:|require\(["']/, asset);
  }
  // The page itself carries no ONNX Runtime: it loads model-wasm.js or model-webgpu.js when needed.
  assert.ok((await (await get('/web/lemer-web.js')).text()).length < 100_000);
  assert.equal((await get('/web/style.css')).headers.get('content-type'), 'text/css; charset=utf-8');
  await expectNotFound('/web/nothing.js');
  await expectNotFound('/web/../package.json');
});

test("onnxruntime-web's WASM runtime files, and nothing else of the package", async () => {
  const r = await get('/ort/ort-wasm-simd-threaded.wasm');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/wasm');
  const bytes = new Uint8Array(await r.arrayBuffer());
  assert.deepEqual([...bytes.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d]); // "\0asm"
  assert.equal(Number(r.headers.get('content-length')), bytes.length);
  const again = await get('/ort/ort-wasm-simd-threaded.wasm', {
    'if-modified-since': r.headers.get('last-modified') ?? '',
  });
  assert.equal(again.status, 304);
  await expectNotFound('/ort/ort.min.mjs');
  await expectNotFound('/ort/package.json');
  await expectNotFound('/ort/..%2Fpackage.json');
});

test('the model folder: the manifest and the files it lists, read-only', async () => {
  const index = (await (await get('/model/')).json()) as { files: string[] };
  const manifest = JSON.parse(readFileSync(join(dir, 'lemer-model.json'), 'utf8')) as {
    files: Record<string, string>;
  };
  assert.deepEqual(
    [...index.files].sort(),
    ['lemer-model.json', ...Object.values(manifest.files)].sort(),
    'tokenizer_config.json is listed only where the folder has one',
  );
  const onnx = await get('/model/model.onnx');
  assert.equal(onnx.status, 200);
  assert.deepEqual(
    new Uint8Array(await onnx.arrayBuffer()),
    new Uint8Array(readFileSync(join(dir, 'model.onnx'))),
  );
  assert.equal((await get('/model/lemer-model.json')).status, 200);
  await expectNotFound('/model/tokenizer_config.json');
  await expectNotFound('/model/../lemer-model.json');
  await expectNotFound('/model/..%2F..%2Fpackage.json');
  await expectNotFound('/model/%2Fetc%2Fpasswd');
  const put = await fetch(`${url}/model/model.onnx`, { method: 'PUT', body: 'x' });
  assert.equal(put.status, 404);
  assert.equal(statSync(join(dir, 'model.onnx')).size, readFileSync(join(dir, 'model.onnx')).length);
});

test('npm run build:web writes the page folder (the bundles and the static files)', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'lemer-web-build-')), 'browser');
  const files = (await buildWeb({ outdir: out })) as Map<string, Uint8Array>;
  const written = readdirSync(out, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(out.length + 1))
    .sort();
  assert.deepEqual(written, [...files.keys()].sort());
  for (const need of ['index.html', 'style.css', 'lemer-web.js', 'model-wasm.js', 'model-webgpu.js'])
    assert.ok(files.has(need), need);
  assert.ok(
    written.some((f) => /^chunks\/decode-flac-\w+\.js$/.test(f)),
    'FLAC decoding is its own chunk',
  );
});
