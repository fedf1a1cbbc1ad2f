/**
 * Checkpoint tensor names -> a graph's parameter names. A family states its base-model
 * prefixes (`bert.` in BertForSequenceClassification), aliases (old spellings) and the
 * tensors set aside on purpose (pooler, heads); everything else must match by name and
 * shape, and one error lists every missing, unexpected and wrong-shaped tensor.
 */
import type { DType } from '../../graph/dtype.js';
import type { HostTensor } from '../../graph/runtime.js';
import { fmtShape } from '../../graph/shape.js';
import { HfLoadError } from './config.js';

export interface ExpectedTensor {
  name: string;
  shape: readonly number[];
  /** The graph's dtype; float tensors are converted to it (default: as stored). */
  dtype?: DType;
}

export interface MapWeightsOptions {
  /** Stripped from the front of checkpoint names, first match wins ('bert.', 'roberta.'). */
  prefixes?: readonly string[];
  /** Applied in order to the name after the prefix: [pattern, replacement] (String.replace). */
  aliases?: readonly (readonly [RegExp, string])[];
  /** Checkpoint tensors that may be present and are not used (matched after prefix and aliases). */
  ignorable?: readonly RegExp[];
  /** The weights file, named in errors. */
  file: string;
  /** What the weights should fit, named in errors (default 'config.json'). */
  against?: string;
}

export interface MappedWeights {
  /** Under the graph's names. */
  weights: Map<string, HostTensor>;
  /** Checkpoint names set aside as ignorable (heads, pooler, buffers). */
  unused: string[];
}

/** Maps checkpoint tensors onto `expected`; throws one HfLoadError listing every problem. */
export function mapWeights(
  loaded: Map<string, HostTensor>,
  expected: readonly ExpectedTensor[],
  opts: MapWeightsOptions,
): MappedWeights {
  const specs = new Map(expected.map((e) => [e.name, e]));
  const weights = new Map<string, HostTensor>();
  const from = new Map<string, string>();
  const unused: string[] = [];
  const unexpected: string[] = [];
  const wrong: string[] = [];
  const wrongNames = new Set<string>();
  for (const [key, t] of loaded) {
    const name = graphName(key, opts);
    const spec = specs.get(name);
    if (!spec) {
      if (opts.ignorable?.some((r) => r.test(name))) unused.push(key);
      else unexpected.push(key === name ? key : `${key} (as '${name}')`);
      continue;
    }
    if (spec.shape.length !== t.shape.length || spec.shape.some((d, i) => d !== t.shape[i])) {
      wrongNames.add(name);
      wrong.push(
        `${key}: the file has ${fmtShape(t.shape)}, ${opts.against ?? 'config.json'} gives ${fmtShape(spec.shape)}`,
      );
      continue;
    }
    const prev = from.get(name);
    if (prev !== undefined) {
      unexpected.push(`${key} (a second tensor for '${name}', after '${prev}')`);
      continue;
    }
    from.set(name, key);
    weights.set(name, convert(t, spec.dtype, key, opts.file));
  }
  // A wrong-shaped tensor is reported once, as wrong-shaped, not also as missing.
  const missingNames = expected
    .filter((e) => !weights.has(e.name) && !wrongNames.has(e.name))
    .map((e) => `${e.name} ${fmtShape(e.shape)}`);
  if (wrong.length || missingNames.length || unexpected.length) {
    const parts: string[] = [];
    if (wrong.length) parts.push(`${wrong.length} wrong-shaped:\n  ${wrong.join('\n  ')}`);
    if (missingNames.length) parts.push(`${missingNames.length} missing:\n  ${missingNames.join('\n  ')}`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected:\n  ${unexpected.join('\n  ')}`);
    throw new HfLoadError(
      `${opts.file}: the weights do not fit ${opts.against ?? 'config.json'}\n${parts.join('\n')}`,
    );
  }
  return { weights, unused };
}

/** The graph name a checkpoint name maps to (prefix stripped, aliases applied). */
export function graphName(key: string, opts: Pick<MapWeightsOptions, 'prefixes' | 'aliases'>): string {
  let name = key;
  for (const p of opts.prefixes ?? [])
    if (name.startsWith(p)) {
      name = name.slice(p.length);
      break;
    }
  for (const [re, to] of opts.aliases ?? []) name = name.replace(re, to);
  return name;
}

function convert(t: HostTensor, dtype: DType | undefined, key: string, file: string): HostTensor {
  if (!dtype || dtype === t.dtype) return t;
  if ((dtype === 'float32' || dtype === 'float64') && (t.dtype === 'float32' || t.dtype === 'float64')) {
    const data =
      dtype === 'float32'
        ? Float32Array.from(t.data as Float64Array)
        : Float64Array.from(t.data as Float32Array);
    return { dtype, shape: t.shape, data };
  }
  throw new HfLoadError(`${file}: tensor '${key}' is ${t.dtype}, the model needs ${dtype}`);
}
