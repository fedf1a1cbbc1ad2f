/**
 * The web page and what it needs to run the model in the browser, all served by this server
 * so that the page works offline:
 *
 * | route | what |
 * | --- | --- |
 * | `GET /` | the page (src/web/index.html) |
 * | `GET /web/*` | its bundle (src/web + the shared src/audio, src/text, src/predict code, built by esbuild) and stylesheet |
 * | `GET /ort/<file>` | onnxruntime-web's WASM runtime files (node_modules/onnxruntime-web/dist) |
 * | `GET /model/<file>` | the served model folder's files, read-only: only lemer-model.json and the files it lists |
 * | `GET /model/` | `{ files }`: the names /model/ serves |
 *
 * The bundle is dist/browser/, written by `npm run build:web` (run by `prepare`); run from
 * the TypeScript sources (tsx, tests) the server builds it in memory on first request instead,
 * so that the page always matches the code.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { MANIFEST_FILE, readManifest } from '../predict/folder.js';
import { HttpError } from './errors.js';

export interface WebPageOptions {
  /** The model folder the server runs, whose files the page may fetch. */
  modelDir: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};
const typeOf = (file: string) => TYPES[extname(file)] ?? 'application/octet-stream';

/**
 * The page may talk to this server only; 'wasm-unsafe-eval' lets onnxruntime-web compile its
 * WASM, and blob: media plays back the chosen audio.
 */
const PAGE_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

/** onnxruntime-web's runtime files: the WASM binaries and their loaders, nothing else. */
const ORT_FILE = /^ort-wasm-simd-threaded(\.(jsep|asyncify|jspi))?\.(wasm|mjs)$/;

function ortDir(): string {
  return dirname(fileURLToPath(import.meta.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm')));
}

function readTree(dir: string, base = dir, out = new Map<string, Uint8Array>()): Map<string, Uint8Array> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) readTree(p, base, out);
    else out.set(relative(base, p).split(sep).join('/'), readFileSync(p));
  }
  return out;
}

type BuildWeb = (o: { write: boolean }) => Promise<Map<string, Uint8Array>>;

async function loadAssets(): Promise<Map<string, Uint8Array>> {
  const built = fileURLToPath(new URL('../browser/', import.meta.url));
  const fromSources = import.meta.url.endsWith('.ts');
  if (!fromSources && existsSync(join(built, 'index.html'))) return readTree(built);
  const script = new URL('../../scripts/build-web.mjs', import.meta.url);
  if (!existsSync(fileURLToPath(script)))
    throw new HttpError(
      503,
      'web_unavailable',
      `the web page is not built (no ${built}): run 'npm run build:web' in lemer's folder`,
    );
  const { buildWeb } = (await import(script.href)) as { buildWeb: BuildWeb };
  return buildWeb({ write: false });
}

let assets: Promise<Map<string, Uint8Array>> | null = null;

/** The page's files, built or read once per process (a failed build is tried again next time). */
function webAssets(): Promise<Map<string, Uint8Array>> {
  assets ??= loadAssets().catch((err: Error) => {
    assets = null;
    if (err instanceof HttpError) throw err;
    throw new HttpError(503, 'web_unavailable', `the web page cannot be built: ${err.message}`);
  });
  return assets;
}

/** A file from disk, with Last-Modified so that a browser's cached copy (e.g. a model) is reused. */
function sendFile(req: FastifyRequest, reply: FastifyReply, path: string): FastifyReply {
  const st = statSync(path);
  const modified = new Date(Math.floor(st.mtimeMs / 1000) * 1000);
  const since = Date.parse(req.headers['if-modified-since'] ?? '');
  void reply
    .header('last-modified', modified.toUTCString())
    .header('cache-control', 'no-cache')
    .type(typeOf(path));
  if (Number.isFinite(since) && modified.getTime() <= since) return reply.code(304).send();
  return reply.header('content-length', st.size).send(createReadStream(path));
}

/** The model folder's files the page may fetch: the manifest and what it lists, inside the folder. */
function modelFiles(dir: string): Set<string> {
  const m = readManifest(dir);
  const names = [MANIFEST_FILE, 'tokenizer_config.json', ...Object.values(m.files)];
  return new Set(
    names.filter((n): n is string => {
      if (typeof n !== 'string' || isAbsolute(n)) return false;
      const p = resolve(dir, n);
      return p.startsWith(resolve(dir) + sep) && existsSync(p) && statSync(p).isFile();
    }),
  );
}

const notFound = (what: string) => new HttpError(404, 'not_found', what);

/** Registers `/`, `/web/*`, `/ort/:file`, `/model/` and `/model/*` (see the module comment). */
export const webPage: FastifyPluginAsync<WebPageOptions> = async (app, opts) => {
  const modelDir = resolve(opts.modelDir);

  app.get('/', async (_req, reply) => {
    const page = (await webAssets()).get('index.html');
    if (!page) throw notFound('the web page has no index.html');
    void reply
      .type(TYPES['.html'])
      .header('content-security-policy', PAGE_POLICY)
      .header('cache-control', 'no-cache');
    return Buffer.from(page);
  });

  app.get('/web/*', async (req, reply) => {
    const name = (req.params as { '*': string })['*'];
    const bytes = (await webAssets()).get(name);
    if (!bytes || name === 'index.html') throw notFound(`no web page file '${name}'`);
    void reply.type(typeOf(name)).header('cache-control', 'no-cache');
    return Buffer.from(bytes);
  });

  app.get('/ort/:file', async (req, reply) => {
    const { file } = req.params as { file: string };
    if (!ORT_FILE.test(file)) throw notFound(`no onnxruntime-web file '${file}'`);
    const path = join(ortDir(), file);
    if (!existsSync(path)) throw notFound(`onnxruntime-web has no '${file}' (${path})`);
    return sendFile(req, reply, path);
  });

  app.get('/model/*', async (req, reply) => {
    const name = (req.params as { '*': string })['*'];
    const files = modelFiles(modelDir);
    // The folder's index: the page asks only for files that are there (tokenizer_config.json is optional).
    if (name === '') return { files: [...files] };
    if (!files.has(name))
      throw notFound(
        `'${name}' is not a file of the served model folder (${MANIFEST_FILE} and the files it lists)`,
      );
    return sendFile(req, reply, join(modelDir, name));
  });
};
