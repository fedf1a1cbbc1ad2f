/**
 * Score fusion of unimodal models (Table 2): the sum of their test logits, as the paper
 * does (`none`), or, as options, weighted by what each model shows on the validation part
 * (never the test fold):
 *
 * - `validation-ua`: model m's logits times w_m = max(0, UA_m - 1/C) / sum_k max(0, UA_k - 1/C),
 *   its validation UA above chance (a model at chance gets weight 0; equal weights if every
 *   model is at chance). UA itself would still give a chance-level model a third of the
 *   weight of a 75 % one.
 * - `temperature`: model m's logits divided by T_m, the temperature that minimises the
 *   validation NLL of softmax(z / T) (a golden-section search over log T): each model's
 *   scores become calibrated log-probabilities (up to a per-row constant, which does not
 *   change the argmax), so that an over-confident model does not outvote a calibrated one.
 */
export type ScoreFusionWeighting = 'none' | 'validation-ua' | 'temperature';

/** One model's logits: on the test part, and on the validation part with its true classes. */
export interface FusionInput {
  test: number[][];
  valid?: { logits: number[][]; yTrue: number[] };
}

export interface FusionResult {
  logits: number[][];
  /** Factor applied to each model's logits (1 / T for temperatures). */
  factors: number[];
  /** Each model's validation UA (0..1), where the weighting used it. */
  validUa?: number[];
  temperatures?: number[];
}

/** Unweighted average recall of predicted classes (argmax) against the truth; classes with no example are left out. */
export function recallMean(logits: number[][], yTrue: number[], numClasses: number): number {
  const hit = new Array<number>(numClasses).fill(0);
  const n = new Array<number>(numClasses).fill(0);
  logits.forEach((row, i) => {
    n[yTrue[i]]++;
    if (argmax(row) === yTrue[i]) hit[yTrue[i]]++;
  });
  const present = n.map((c, k) => (c > 0 ? hit[k] / c : -1)).filter((r) => r >= 0);
  return present.length ? present.reduce((a, b) => a + b, 0) / present.length : 0;
}

export function argmax(row: readonly number[]): number {
  let k = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[k]) k = j;
  return k;
}

/** Mean NLL of softmax(z / T) at the true classes. */
export function temperatureNll(logits: number[][], yTrue: number[], T: number): number {
  let s = 0;
  logits.forEach((row, i) => {
    const z = row.map((v) => v / T);
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    s += lse - z[yTrue[i]];
  });
  return s / Math.max(1, logits.length);
}

/** The temperature in [0.01, 100] of least validation NLL (golden-section search over log T; the NLL is unimodal in it for most data). */
export function fitTemperature(logits: number[][], yTrue: number[]): number {
  if (logits.length === 0) throw new Error('score fusion: no validation utterances to fit a temperature on');
  const f = (u: number) => temperatureNll(logits, yTrue, Math.exp(u));
  let [a, b] = [Math.log(0.01), Math.log(100)];
  const r = (Math.sqrt(5) - 1) / 2;
  let c = b - r * (b - a);
  let d = a + r * (b - a);
  let [fc, fd] = [f(c), f(d)];
  for (let i = 0; i < 80; i++) {
    if (fc < fd) {
      [b, d, fd] = [d, c, fc];
      c = b - r * (b - a);
      fc = f(c);
    } else {
      [a, c, fc] = [c, d, fd];
      d = a + r * (b - a);
      fd = f(d);
    }
  }
  return Math.exp((a + b) / 2);
}

/** The fused test logits of the models, weighted as `weighting` says. */
export function fuseScores(
  models: readonly FusionInput[],
  weighting: ScoreFusionWeighting,
  numClasses: number,
): FusionResult {
  if (models.length === 0) throw new Error('score fusion: no models');
  const n = models[0].test.length;
  for (const m of models)
    if (m.test.length !== n || m.test.some((r) => r.length !== numClasses))
      throw new Error(
        `score fusion: the models' test logits differ in shape (${n} x ${numClasses} expected)`,
      );
  if (weighting !== 'none')
    models.forEach((m, k) => {
      if (!m.valid || m.valid.logits.length === 0)
        throw new Error(
          `score fusion weighting ${weighting}: model ${k + 1} has no validation logits (a validation part is needed: train.validFraction, or a corpus split with one)`,
        );
    });
  let factors: number[];
  const out: Partial<FusionResult> = {};
  if (weighting === 'none') factors = models.map(() => 1);
  else if (weighting === 'validation-ua') {
    const ua = models.map((m) => recallMean(m.valid!.logits, m.valid!.yTrue, numClasses));
    const above = ua.map((u) => Math.max(0, u - 1 / numClasses));
    const total = above.reduce((a, b) => a + b, 0);
    factors = total > 0 ? above.map((x) => x / total) : models.map(() => 1 / models.length);
    out.validUa = ua;
  } else if (weighting === 'temperature') {
    const T = models.map((m) => fitTemperature(m.valid!.logits, m.valid!.yTrue));
    factors = T.map((t) => 1 / t);
    out.temperatures = T;
  } else
    throw new Error(
      `scoreFusion.weighting: '${String(weighting)}' is not none, validation-ua or temperature`,
    );
  const logits = Array.from({ length: n }, (_, i) =>
    Array.from({ length: numClasses }, (_, j) =>
      models.reduce((s, m, k) => s + factors[k] * m.test[i][j], 0),
    ),
  );
  return { ...out, logits, factors };
}
