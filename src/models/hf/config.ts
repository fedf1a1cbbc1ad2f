/**
 * config.json of a Hugging Face model folder, read as is (snake_case keys kept); each
 * family's schema validates it. Errors name the folder or file and the problem.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export class HfLoadError extends Error {
  override name = 'HfLoadError';
}

export interface HfConfigFile {
  /** config.json's object, as read. */
  config: Record<string, unknown>;
  /** The file it came from. */
  path: string;
}

export interface ReadHfConfigOptions {
  /** model_type values the caller can build; another one is an error listing these. */
  knownTypes?: readonly string[];
}

/** Reads `<dir>/config.json`; with `knownTypes`, also checks its model_type. */
export function readHfConfig(dir: string, opts: ReadHfConfigOptions = {}): HfConfigFile {
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st) throw new HfLoadError(`${dir}: no such folder (expected a Hugging Face model folder)`);
  if (!st.isDirectory())
    throw new HfLoadError(`${dir}: not a folder (expected a Hugging Face model folder holding config.json)`);
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new HfLoadError(
      `${path}: not found: a Hugging Face model folder holds config.json beside its weights`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new HfLoadError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new HfLoadError(
      `${path}: expected a JSON object, got ${Array.isArray(raw) ? 'an array' : typeof raw}`,
    );
  const config = raw as Record<string, unknown>;
  // Old configs (written before transformers kept model_type) name only their class.
  if (config.model_type === undefined) {
    const inferred = modelTypeFromArchitectures(config.architectures);
    if (inferred) config.model_type = inferred;
  }
  if (opts.knownTypes) checkModelType(config, path, opts.knownTypes);
  return { config, path };
}

/** config.model_type, checked against the known ones. */
export function checkModelType(
  config: Record<string, unknown>,
  path: string,
  knownTypes: readonly string[],
): string {
  const t = config.model_type;
  const known = `known: ${[...knownTypes].sort().join(', ')}`;
  if (t === undefined) throw new HfLoadError(`${path}: no "model_type" key (${known})`);
  if (typeof t !== 'string')
    throw new HfLoadError(`${path}: "model_type" must be a string, got ${JSON.stringify(t)}`);
  if (!knownTypes.includes(t)) throw new HfLoadError(`${path}: unknown model_type "${t}" (${known})`);
  return t;
}

/** Class-name prefixes of Hugging Face architectures -> model_type, longest first. */
const ARCH_PREFIXES: [string, string][] = [
  ['Wav2Vec2Conformer', 'wav2vec2-conformer'],
  ['Wav2Vec2', 'wav2vec2'],
  ['Roberta', 'roberta'],
  ['Hubert', 'hubert'],
  ['WavLM', 'wavlm'],
  ['Bert', 'bert'],
];

/** model_type from `architectures` (`["BertForMaskedLM"]` -> bert), or null. */
export function modelTypeFromArchitectures(architectures: unknown): string | null {
  if (!Array.isArray(architectures) || typeof architectures[0] !== 'string') return null;
  const a = architectures[0];
  for (const [prefix, type] of ARCH_PREFIXES) if (a.startsWith(prefix)) return type;
  return null;
}
