#!/usr/bin/env node
// Bundles lemer's web page (src/web) for the browser with esbuild: the page's own code and the
// same src/audio, src/text and src/predict code that Node runs, with onnxruntime-web in place
// of onnxruntime-node. `npm run build:web` (also run by `prepare`) writes dist/browser/;
// `lemer serve` run from the TypeScript sources (tsx, tests) builds it in memory instead.
//
//   node scripts/build-web.mjs [--outdir dist/browser]
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WEB = join(ROOT, 'src/web');
/** Files copied beside the bundle as they are. */
const STATIC_FILES = ['index.html', 'style.css'];

/**
 * Node's built-in modules, which the shared code imports for what only Node does (reading
 * files, the native runtime): in the bundle each export is a function that throws, saying
 * so, if it is ever called. `createRequire` is called when a module loads, so it returns such
 * a `require`.
 */
const nodeStubs = {
  name: 'node-builtins-unavailable',
  setup(build) {
    const builtins = new Set(builtinModules);
    build.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      // A bare name that a package provides (a browser polyfill such as 'buffer') is that package.
      if (
        !args.path.startsWith('node:') &&
        (!builtins.has(name) || existsSync(join(ROOT, 'node_modules', name)))
      )
        return undefined;
      return { path: name, namespace: 'node-stub' };
    });
    build.onLoad({ filter: /.*/, namespace: 'node-stub' }, async (args) => {
      const real = await import(`node:${args.path}`);
      const names = Object.keys(real).filter((k) => k !== 'default' && /^[A-Za-z_$][\w$]*$/.test(k));
      const lines = [
        'function unavailable(name) {',
        '  return function () {',
        "    throw new Error(`${name} is Node's, not available in a web page (lemer's browser bundle)`);",
        '  };',
        '}',
        ...names.map((k) =>
          k === 'createRequire'
            ? `export function createRequire() { return unavailable('require'); }`
            : `export const ${k} = unavailable(${JSON.stringify(`node:${args.path}.${k}`)});`,
        ),
        'export default {};',
      ];
      return { contents: lines.join('\n'), loader: 'js' };
    });
  },
};

/**
 * audio-decode loads a codec package on demand; lemer hands it FLAC only (WAV has its own
 * reader and other formats are refused first), so the others stay out of the bundle.
 */
const flacOnly = {
  name: 'audio-decode-flac-only',
  setup(build) {
    build.onResolve({ filter: /^@audio\/decode-/ }, (args) =>
      args.path === '@audio/decode-flac' ? undefined : { path: args.path, namespace: 'codec-stub' },
    );
    build.onLoad({ filter: /.*/, namespace: 'codec-stub' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not in lemer's browser bundle (it reads WAV and FLAC)`)});`,
      loader: 'js',
    }));
  },
};

/**
 * libsamplerate (2 MB of WASM) serves only resample()'s non-default 'libsamplerate' method;
 * models read torchaudio-resampled audio, so the page leaves it out.
 */
const noLibsamplerate = {
  name: 'no-libsamplerate',
  setup(build) {
    build.onResolve({ filter: /^@alexanderolsen\/libsamplerate-js$/ }, (args) => ({
      path: args.path,
      namespace: 'lsr-stub',
    }));
    build.onLoad({ filter: /.*/, namespace: 'lsr-stub' }, () => ({
      contents: [
        'export default {',
        '  ConverterType: {},',
        '  create() {',
        `    throw new Error("resample method 'libsamplerate' is not in lemer's browser bundle (the default, 'torchaudio', is)");`,
        '  },',
        '};',
      ].join('\n'),
      loader: 'js',
    }));
  },
};

/**
 * Builds the page. With `write: false` nothing is written; either way the result maps each
 * file's path under the output folder ('lemer-web.js', 'model-wasm.js', 'chunks/...', 'index.html')
 * to its bytes.
 */
export async function buildWeb({ outdir = join(ROOT, 'dist/browser'), write = true } = {}) {
  const options = {
    absWorkingDir: ROOT,
    outdir,
    bundle: true,
    // Codecs that audio-decode loads on demand (FLAC) stay in their own chunks.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    plugins: [nodeStubs, flacOnly, noLibsamplerate],
    logLevel: 'warning',
    write: false,
  };
  // The page itself holds no ONNX Runtime. The model loader is built twice, on the WASM-only
  // runtime (half the size of WebGPU's, so it starts faster) and on the WebGPU one, and the
  // page loads the one it needs; onnxruntime-node's imports in src/predict get the same one.
  const ortBuild = (variant) => `onnxruntime-web/${variant}`;
  const builds = [
    { entryPoints: { 'lemer-web': join(WEB, 'main.ts') }, alias: { 'onnxruntime-node': ortBuild('wasm') } },
    ...['wasm', 'webgpu'].map((v) => ({
      entryPoints: { [`model-${v}`]: join(WEB, 'model-source.ts') },
      alias: { 'onnxruntime-node': ortBuild(v), 'onnxruntime-web': ortBuild(v) },
    })),
  ];
  const results = await Promise.all(builds.map((b) => esbuild.build({ ...options, ...b })));
  const files = new Map();
  for (const f of results.flatMap((r) => r.outputFiles))
    files.set(relative(outdir, f.path).split('\\').join('/'), f.contents);
  for (const name of STATIC_FILES) files.set(name, readFileSync(join(WEB, name)));
  if (write) {
    // Written beside the final folder, then renamed into place: a server never sees half a bundle.
    const tmp = `${outdir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    for (const [name, bytes] of files) {
      mkdirSync(dirname(join(tmp, name)), { recursive: true });
      writeFileSync(join(tmp, name), bytes);
    }
    rmSync(outdir, { recursive: true, force: true });
    renameSync(tmp, outdir);
  }
  return files;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--outdir');
  const outdir = i > 0 ? resolve(process.argv[i + 1]) : join(ROOT, 'dist/browser');
  const t0 = Date.now();
  const files = await buildWeb({ outdir });
  let bytes = 0;
  for (const b of files.values()) bytes += b.length;
  console.error(
    `build-web: ${files.size} files, ${(bytes / 1e6).toFixed(1)} MB in ${relative(process.cwd(), outdir) || '.'} (${Date.now() - t0} ms)`,
  );
}
