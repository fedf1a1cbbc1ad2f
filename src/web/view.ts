/**
 * The result as the paper's Figure 4 draws it: class probabilities, the transcript's tokens
 * coloured by their label-token attention, and the waveform with the label-frame attention
 * as a strip under it. Weights are cosines averaged over the classes, coloured on a diverging
 * scale (blue negative, white zero, red positive) scaled to the largest magnitude shown.
 */
import type { FrameWeight, Prediction, TokenWeight } from '../predict/lemer.js';

const NEGATIVE = [33, 102, 172];
const ZERO = [247, 247, 247];
const POSITIVE = [178, 24, 43];

/** The colour of weight `w` on a scale from -max to +max. */
export function weightColour(w: number, max: number): string {
  const t = max > 0 ? Math.max(-1, Math.min(1, w / max)) : 0;
  const end = t < 0 ? NEGATIVE : POSITIVE;
  const a = Math.abs(t);
  const [r, g, b] = ZERO.map((z, i) => Math.round(z + (end[i] - z) * a));
  return `rgb(${r}, ${g}, ${b})`;
}

const maxAbs = (ws: number[]) => ws.reduce((m, w) => Math.max(m, Math.abs(w)), 0);

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

/** One bar per class, in the model's label order; the data attributes hold the exact values. */
export function renderProbs(target: HTMLElement, p: Prediction): void {
  target.replaceChildren(
    ...Object.entries(p.probs).map(([label, prob]) => {
      const row = el('div', { className: `prob${label === p.label ? ' top' : ''}` });
      row.dataset.label = label;
      row.dataset.prob = String(prob);
      const bar = el('span', { className: 'bar' });
      bar.style.width = `${(prob * 100).toFixed(2)}%`;
      row.append(
        el('span', { className: 'name' }, label),
        el('span', { className: 'track' }, bar),
        el('span', { className: 'value' }, `${(prob * 100).toFixed(1)}%`),
      );
      return row;
    }),
  );
}

/** The current utterance's word pieces; a '##' piece is drawn joined to the one before it. */
export function renderTokens(target: HTMLElement, tokens: TokenWeight[] | undefined): void {
  if (!tokens?.length) {
    target.replaceChildren(el('span', { className: 'muted' }, 'no transcript: no token weights'));
    return;
  }
  const max = maxAbs(tokens.map((t) => t.weight));
  const nodes: Node[] = [];
  for (const [i, t] of tokens.entries()) {
    const piece = t.token.startsWith('##');
    if (i > 0 && !piece) nodes.push(document.createTextNode(' '));
    const span = el('span', {
      className: 'token',
      title: `${t.token}: ${t.weight.toFixed(4)}`,
      textContent: piece ? t.token.slice(2) : t.token,
    });
    span.dataset.weight = String(t.weight);
    span.style.background = weightColour(t.weight, max);
    if (max > 0 && Math.abs(t.weight) / max > 0.55) span.style.color = '#fff';
    nodes.push(span);
  }
  target.replaceChildren(...nodes);
}

/** The colour scale's legend: -max ... 0 ... +max. */
export function renderLegend(target: HTMLElement, p: Prediction): void {
  const ws = [...(p.tokens ?? []), ...(p.frames ?? [])].map((x) => x.weight);
  if (!ws.length) {
    target.replaceChildren();
    return;
  }
  const bar = el('span', { className: 'scale' });
  bar.style.background = `linear-gradient(to right, ${weightColour(-1, 1)}, ${weightColour(0, 1)}, ${weightColour(1, 1)})`;
  target.replaceChildren(
    el('span', {}, 'negative'),
    bar,
    el('span', {}, 'positive'),
    el('span', { className: 'muted' }, ' (each map scaled to its largest |weight|; hover for values)'),
  );
}

/**
 * The waveform (16 kHz mono, as the model read it) with the frame weights as a strip of
 * cells under it, each from its frame's start time to the next one's, and a time axis.
 */
export function drawWaveform(
  canvas: HTMLCanvasElement,
  samples: Float32Array | null,
  sampleRate: number,
  frames: FrameWeight[] | undefined,
  seconds: number,
): void {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth || 900;
  const H = canvas.clientHeight || 170;
  canvas.width = Math.round(W * dpr);
  canvas.height = Math.round(H * dpr);
  const g = canvas.getContext('2d');
  if (!g) return;
  g.scale(dpr, dpr);
  g.clearRect(0, 0, W, H);
  const waveH = H - 58;
  const stripTop = waveH + 6;
  const stripH = 26;
  const x = (t: number) => (seconds > 0 ? (t / seconds) * W : 0);
  g.strokeStyle = '#ddd';
  g.beginPath();
  g.moveTo(0, waveH / 2);
  g.lineTo(W, waveH / 2);
  g.stroke();
  if (samples?.length) {
    // Min and max of the samples under each pixel column.
    let peak = 0;
    for (const v of samples) peak = Math.max(peak, Math.abs(v));
    const scale = peak > 0 ? waveH / 2 / peak : 0;
    g.fillStyle = '#4a6fa5';
    const per = samples.length / W;
    for (let px = 0; px < W; px++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = Math.floor(px * per); i < Math.min(samples.length, Math.floor((px + 1) * per) + 1); i++) {
        lo = Math.min(lo, samples[i]);
        hi = Math.max(hi, samples[i]);
      }
      if (lo === Infinity) continue;
      const top = waveH / 2 - hi * scale;
      g.fillRect(px, top, 1, Math.max(1, (hi - lo) * scale));
    }
  }
  if (frames?.length) {
    const max = maxAbs(frames.map((f) => f.weight));
    for (const [i, f] of frames.entries()) {
      const end = i + 1 < frames.length ? frames[i + 1].time : seconds;
      g.fillStyle = weightColour(f.weight, max);
      g.fillRect(x(f.time), stripTop, Math.max(1, x(end) - x(f.time) + 0.5), stripH);
    }
    g.strokeStyle = '#999';
    g.strokeRect(0.5, stripTop + 0.5, W - 1, stripH - 1);
  }
  // Time axis: about one tick per 80 px, at round steps.
  const axisY = stripTop + stripH + 4;
  const raw = seconds / Math.max(1, W / 80);
  const step = [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 30, 60].find((s) => s >= raw) ?? 60;
  g.fillStyle = '#555';
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'top';
  for (let t = 0; t <= seconds + 1e-9; t += step) {
    const px = Math.min(W - 1, x(t));
    g.fillRect(px, axisY, 1, 4);
    g.textAlign = px < 20 ? 'left' : px > W - 20 ? 'right' : 'center';
    g.fillText(`${+t.toFixed(2)} s`, px, axisY + 6);
  }
}
