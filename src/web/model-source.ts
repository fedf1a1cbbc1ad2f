/**
 * The model folder in a web page: its files fetched from the server's /model/ routes and its
 * graphs run by onnxruntime-web (WASM, or WebGPU where the browser has it). This is the only
 * part of the in-browser predictor that differs from Node's; Lemer itself (audio decoding,
 * resampling, log-mel, tokenisation, label-attention post-processing) is the same code.
 * Bundled twice (model-wasm.js, model-webgpu.js: scripts/build-web.mjs), once per runtime.
 */
import * as ort from 'onnxruntime-web';
import { MANIFEST_FILE, parseManifest } from '../predict/folder.js';
import { Lemer, type ModelSource } from '../predict/lemer.js';

/** 'webgpu' runs on the GPU where the browser offers one, with WASM for what it lacks. */
export type Backend = 'wasm' | 'webgpu';

export interface BrowserModelOptions {
  backend: Backend;
  /** Run the int8 graph (as a server started with --int8 does). */
  int8?: boolean;
  /** Bytes of a file fetched so far, and its size when the server says it. */
  onProgress?: (file: string, loaded: number, total: number | null) => void;
}

async function fetchBytes(
  url: string,
  onProgress?: (loaded: number, total: number | null) => void,
): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const size = Number(r.headers.get('content-length'));
  const total = Number.isFinite(size) && size > 0 ? size : null;
  if (!r.body) return new Uint8Array(await r.arrayBuffer());
  const parts: Uint8Array[] = [];
  let loaded = 0;
  const reader = r.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    onProgress?.(loaded, total);
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The folder at `base` (a URL ending in '/'), read over HTTP. */
export function urlSource(base: string, opts: BrowserModelOptions): ModelSource {
  const url = (file: string) => new URL(file, base).href;
  const providers = opts.backend === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'];
  // The server lists the folder's files (GET /model/), so that an optional file that is not
  // there is not asked for; a plain static host without the list gets every file asked for.
  let index: Promise<Set<string> | null> | null = null;
  const listed = async (file: string) => {
    index ??= fetch(base)
      .then(async (r) => (r.ok ? new Set(((await r.json()) as { files: string[] }).files) : null))
      .catch(() => null);
    const files = await index;
    return files === null || files.has(file);
  };
  const readText = async (file: string): Promise<string | null> => {
    if (!(await listed(file))) return null;
    const r = await fetch(url(file));
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(`${url(file)}: HTTP ${r.status}`);
    return r.text();
  };
  return {
    dir: base,
    path: url,
    readText,
    async manifest() {
      const text = await readText(MANIFEST_FILE);
      if (text === null)
        throw new Error(`${url(MANIFEST_FILE)}: missing: ${base} is not a lemer model folder`);
      return parseManifest(text, url(MANIFEST_FILE));
    },
    async session(file, options) {
      const bytes = await fetchBytes(url(file), (loaded, total) => opts.onProgress?.(file, loaded, total));
      // Node's thread setting has no meaning here: ort.env.wasm.numThreads governs WASM threads.
      const { intraOpNumThreads: _threads, ...rest } = options;
      return ort.InferenceSession.create(bytes, { ...rest, executionProviders: providers });
    },
  };
}

/**
 * Loads the model folder served at `base` into this page. onnxruntime-web's WASM files come
 * from the server too (/ort/), so the page needs nothing from outside.
 */
export async function loadBrowserModel(base: string, opts: BrowserModelOptions): Promise<Lemer> {
  ort.env.wasm.wasmPaths = new URL('/ort/', location.href).href;
  // Threads need a cross-origin-isolated page and would start this bundle in workers: one thread.
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  return Lemer.load(base, { int8: opts.int8, source: urlSource(base, opts) });
}
