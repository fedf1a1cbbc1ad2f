/**
 * lemer's web page (served at / by `lemer serve`): pick or record audio, type what was said,
 * and classify it on the server (POST /v1/predict) or in this browser (the same model folder
 * run by onnxruntime-web; the audio never leaves the device). Both show the same result.
 */
import type { Lemer, Prediction } from '../predict/lemer.js';
import { prepareAudio } from '../predict/input.js';
import { fromFile, startRecording, type PageAudio, type Recording } from './audio.js';
import type { Backend } from './model-source.js';
import { drawWaveform, renderLegend, renderProbs, renderTokens } from './view.js';

interface Health {
  status: string;
  model: { kind: string; labels: string[]; graph: string };
}

const $ = <T extends HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
};

const ui = {
  model: $<HTMLElement>('model-name'),
  file: $<HTMLInputElement>('audio-file'),
  record: $<HTMLButtonElement>('record'),
  audioInfo: $<HTMLElement>('audio-info'),
  player: $<HTMLAudioElement>('player'),
  transcript: $<HTMLTextAreaElement>('transcript'),
  server: $<HTMLButtonElement>('predict-server'),
  browser: $<HTMLButtonElement>('predict-browser'),
  backend: $<HTMLSelectElement>('backend'),
  status: $<HTMLElement>('status'),
  result: $<HTMLElement>('result'),
  source: $<HTMLElement>('result-source'),
  label: $<HTMLElement>('result-label'),
  probs: $<HTMLElement>('probs'),
  waveform: $<HTMLCanvasElement>('waveform'),
  tokens: $<HTMLElement>('tokens'),
  legend: $<HTMLElement>('legend'),
  warnings: $<HTMLElement>('warnings'),
  json: $<HTMLElement>('result-json'),
};

/** The audio the user gave, and its 16 kHz mono samples (lemer's front end) for the waveform. */
let audio: (PageAudio & { samples: Float32Array; seconds: number }) | null = null;
let recording: Recording | null = null;
let health: Health | null = null;
let busy = false;
let runs = 0;
/** Whether this browser can run the WebGPU backend (an adapter, not just the API). */
async function hasWebGpu(): Promise<boolean> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/**
 * The in-page model loader, built on the WASM-only ONNX Runtime or on the WebGPU one
 * (scripts/build-web.mjs): only the one a run needs is downloaded.
 */
async function modelLoader(backend: Backend): Promise<typeof import('./model-source.js')> {
  return (await import(
    new URL(`/web/model-${backend}.js`, location.href).href
  )) as typeof import('./model-source.js');
}

/** Models loaded in this page, one per backend, kept for later runs. */
const models = new Map<Backend, Promise<Lemer>>();

function status(text: string, kind: 'info' | 'error' = 'info'): void {
  ui.status.textContent = text;
  ui.status.className = kind;
}

function refreshButtons(): void {
  // A text model needs no audio; the others do.
  const ready = health !== null && !busy && (audio !== null || health.model.kind === 'text');
  ui.server.disabled = !ready;
  ui.browser.disabled = !ready;
  ui.record.disabled = busy;
  ui.file.disabled = busy || recording !== null;
}

async function useAudio(a: PageAudio): Promise<void> {
  audio = null;
  refreshButtons();
  try {
    // The same decoding and resampling as the model's: what the waveform shows is what it reads.
    const p = await prepareAudio(a.bytes, { name: a.name });
    audio = { ...a, samples: p.samples, seconds: p.seconds };
    ui.audioInfo.textContent =
      `${a.name} (${a.origin}): ${p.seconds.toFixed(2)} s, ${p.original.sampleRate} Hz, ` +
      `${p.original.channels} channel${p.original.channels > 1 ? 's' : ''}`;
    ui.player.src = URL.createObjectURL(new Blob([a.bytes.slice().buffer]));
    ui.player.hidden = false;
    status('');
  } catch (err) {
    ui.audioInfo.textContent = 'No usable audio.';
    ui.player.hidden = true;
    status((err as Error).message, 'error');
  }
  refreshButtons();
}

function show(p: Prediction, where: string): void {
  runs++;
  ui.result.hidden = false;
  ui.result.dataset.source = where.startsWith('server') ? 'server' : 'browser';
  ui.result.dataset.run = String(runs);
  ui.source.textContent = `(${where})`;
  ui.label.replaceChildren(
    Object.assign(document.createElement('strong'), { textContent: p.label }),
    ` ${(p.probs[p.label] * 100).toFixed(1)}% · ${p.modality}`,
  );
  renderProbs(ui.probs, p);
  renderTokens(ui.tokens, p.tokens);
  renderLegend(ui.legend, p);
  drawWaveform(ui.waveform, audio?.samples ?? null, 16000, p.frames, p.audio?.seconds ?? audio?.seconds ?? 0);
  const notes = [...(p.note ? [p.note] : []), ...p.warnings];
  ui.warnings.replaceChildren(
    ...notes.map((w) => Object.assign(document.createElement('li'), { textContent: w })),
  );
  ui.json.textContent = JSON.stringify(p, null, 2);
}

async function run(what: string, fn: () => Promise<void>): Promise<void> {
  if (busy) return;
  busy = true;
  refreshButtons();
  status(`${what}…`);
  try {
    await fn();
  } catch (err) {
    status((err as Error).message, 'error');
  } finally {
    busy = false;
    refreshButtons();
  }
}

async function predictOnServer(): Promise<void> {
  const a = audio;
  const form = new FormData();
  if (a) form.append('audio', new Blob([a.bytes.slice().buffer], { type: 'audio/wav' }), a.name);
  if (ui.transcript.value.trim()) form.append('text', ui.transcript.value);
  const t0 = performance.now();
  const r = await fetch('/v1/predict', { method: 'POST', body: form });
  const body = (await r.json()) as Prediction | { error: { code: string; message: string } };
  if ('error' in body) throw new Error(`the server refused it (${body.error.code}): ${body.error.message}`);
  show(body, `server, ${Math.round(performance.now() - t0)} ms`);
  status('');
}

async function predictInBrowser(): Promise<void> {
  const a = audio;
  const wanted = ui.backend.value === 'wasm' ? 'wasm' : 'auto';
  const backend: Backend = wanted === 'auto' && (await hasWebGpu()) ? 'webgpu' : 'wasm';
  let model = models.get(backend);
  if (!model) {
    const { loadBrowserModel } = await modelLoader(backend);
    model = loadBrowserModel(new URL('/model/', location.href).href, {
      backend,
      // The same graph as the server's (fp32, or int8 under --int8), for the same numbers.
      int8: health!.model.graph.includes('int8'),
      onProgress: (file, loaded, total) =>
        status(
          `downloading the model: ${file} ${(loaded / 1e6).toFixed(1)}` +
            (total ? ` of ${(total / 1e6).toFixed(1)} MB` : ' MB'),
        ),
    });
    models.set(backend, model);
    model.catch(() => models.delete(backend));
  }
  const m = await model;
  status('running in this browser…');
  const t0 = performance.now();
  const p = await m.predict({
    ...(a ? { audio: a.bytes, name: a.name } : {}),
    ...(ui.transcript.value.trim() ? { text: ui.transcript.value } : {}),
  });
  show(
    p,
    `this browser, ${backend === 'webgpu' ? 'WebGPU' : 'WASM'}, ${Math.round(performance.now() - t0)} ms`,
  );
  status('');
}

ui.file.addEventListener('change', () => {
  const f = ui.file.files?.[0];
  if (!f) return;
  status(`reading ${f.name}…`);
  void fromFile(f).then(useAudio, (err: Error) => status(err.message, 'error'));
});

ui.record.addEventListener('click', () => {
  if (recording) {
    const r = recording;
    recording = null;
    ui.record.textContent = '● Record';
    ui.record.classList.remove('recording');
    status('decoding the recording…');
    void r.stop().then(useAudio, (err: Error) => status(err.message, 'error'));
    refreshButtons();
    return;
  }
  void startRecording().then(
    (r) => {
      recording = r;
      ui.record.textContent = '■ Stop';
      ui.record.classList.add('recording');
      status('recording… press Stop when done');
      refreshButtons();
    },
    (err: Error) => status(`cannot record: ${err.message}`, 'error'),
  );
});

ui.server.addEventListener('click', () => void run('asking the server', predictOnServer));
ui.browser.addEventListener('click', () => void run('loading the model into this page', predictInBrowser));

void (async () => {
  try {
    const r = await fetch('/healthz');
    health = (await r.json()) as Health;
    if (health.status !== 'ok') throw new Error('the server has no model running');
    ui.model.textContent = `${health.model.kind} model, classes ${health.model.labels.join(', ')}`;
    document.body.dataset.ready = '1';
  } catch (err) {
    health = null;
    status(`cannot reach the server's model: ${(err as Error).message}`, 'error');
  }
  refreshButtons();
})();
