/**
 * Checkpoints: a directory with
 *   model.safetensors      the parameters, under the model's (Hugging Face style) names
 *   optimizer.safetensors  the optimiser state (`<param>.adam_m`, `<param>.adam_v`)
 *   trainer.json           step, epoch, seeds and RNG state, optimiser config, run config, lemer version
 * Saved atomically: every file is written to a temporary name, fsynced and renamed inside
 * a temporary sibling directory, which then replaces the checkpoint directory, so a crash
 * never leaves a half-written checkpoint under the real name.
 */
import {
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DType } from './dtype.js';
import type { Graph, ParamSpec } from './graph.js';
import { ParameterStore, TensorStore, specsOf } from './params.js';
import type { HostTensor } from './runtime.js';
import { SafetensorsFile, writeChunksAtomic, writeSafetensors } from './safetensors.js';
import { fmtShape } from './shape.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_FILE = 'trainer.json';
export const CHECKPOINT_FORMAT = 'lemer-checkpoint';
export const CHECKPOINT_VERSION = 1;

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

type Tensors = TensorStore | Record<string, HostTensor>;

export interface CheckpointContent {
  params: Tensors;
  optimizerState?: Tensors;
  /** Step, epoch, seeds, RNG state: whatever the trainer needs to continue exactly. */
  trainerState?: Record<string, unknown>;
  /** The optimiser's configuration (schedule included); RegExps and functions are stored as text. */
  optimizer?: unknown;
  /** The run's configuration (model, data, ...), stored as given. */
  config?: unknown;
}

/** The contents of trainer.json. */
export interface TrainerFile {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  lemerVersion: string;
  savedAt: string;
  trainer: Record<string, unknown>;
  optimizer: unknown;
  config: unknown;
  files: { model: { tensors: number; bytes: number }; optimizer: { tensors: number; bytes: number } | null };
}

let cachedVersion: string | null = null;
/** lemer's version, from the nearest package.json named lemer above this file. */
export function lemerVersion(): string {
  if (cachedVersion) return cachedVersion;
  let dir = dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'lemer' && pkg.version) return (cachedVersion = pkg.version);
    } catch {
      // not here: go up
    }
    dir = dirname(dir);
  }
  return (cachedVersion = '0.0.0');
}

const recordOf = (t: Tensors): Record<string, HostTensor> => (t instanceof TensorStore ? t.toRecord() : t);

/** JSON for configs that may hold RegExps (stored as '/src/flags') and functions (stored as their name). */
function toJson(v: unknown): string {
  return JSON.stringify(
    v ?? null,
    (_k, x: unknown) =>
      x instanceof RegExp
        ? String(x)
        : typeof x === 'function'
          ? `<function ${(x as { name?: string }).name || 'anonymous'}>`
          : x,
    2,
  );
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems do not allow fsync on directories; the renames are still atomic.
  }
}

/** Writes a checkpoint directory atomically (see the file comment). Returns the absolute path. */
export function saveCheckpoint(dir: string, content: CheckpointContent): string {
  const target = resolve(dir);
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = `${target}.tmp-${tag}`;
  mkdirSync(tmp);
  try {
    const params = recordOf(content.params);
    const opt = content.optimizerState ? recordOf(content.optimizerState) : null;
    const meta = { format: CHECKPOINT_FORMAT, lemer_version: lemerVersion() };
    writeSafetensors(join(tmp, MODEL_FILE), params, { ...meta, content: 'parameters' });
    if (opt) writeSafetensors(join(tmp, OPTIMIZER_FILE), opt, { ...meta, content: 'optimizer state' });
    const size = (r: Record<string, HostTensor>) => ({
      tensors: Object.keys(r).length,
      bytes: Object.values(r).reduce((a, t) => a + t.data.byteLength, 0),
    });
    const file: TrainerFile = {
      format: CHECKPOINT_FORMAT,
      formatVersion: CHECKPOINT_VERSION,
      lemerVersion: lemerVersion(),
      savedAt: new Date().toISOString(),
      trainer: content.trainerState ?? {},
      optimizer: content.optimizer ?? null,
      config: content.config ?? null,
      files: { model: size(params), optimizer: opt ? size(opt) : null },
    };
    // trainer.json last: a directory holding it is complete.
    writeChunksAtomic(join(tmp, TRAINER_FILE), [new TextEncoder().encode(toJson(file) + '\n')]);
    fsyncDir(tmp);
    if (existsSync(target)) {
      const old = `${target}.old-${tag}`;
      renameSync(target, old);
      renameSync(tmp, target);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, target);
    }
    fsyncDir(parent);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return target;
}

export interface TensorCheck {
  missing: string[];
  unexpected: string[];
  /** One line per tensor whose shape or dtype differs. */
  mismatched: string[];
}

/** Compares what a file holds with what a model expects: missing, unexpected, different shape/dtype. */
export function compareTensors(
  expect: readonly { name: string; shape: readonly number[]; dtype: DType }[],
  have: ReadonlyMap<string, { shape: readonly number[]; dtype: DType }>,
): TensorCheck {
  const want = new Map(expect.map((s) => [s.name, s]));
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const s of expect) {
    const h = have.get(s.name);
    if (!h) missing.push(s.name);
    else if (h.dtype !== s.dtype || h.shape.join() !== s.shape.join())
      mismatched.push(
        `${s.name}: model ${s.dtype}${fmtShape(s.shape)}, checkpoint ${h.dtype}${fmtShape(h.shape)}`,
      );
  }
  const unexpected = [...have.keys()].filter((n) => !want.has(n));
  return { missing, unexpected, mismatched };
}

/** One message listing every problem (empty string when there is none under `strict`). */
export function describeCheck(file: string, c: TensorCheck, strict: boolean): string {
  const parts: string[] = [];
  const list = (xs: string[]) =>
    (xs.length > 20 ? [...xs.slice(0, 20), `... and ${xs.length - 20} more`] : xs).map((x) => `    ${x}`);
  if (c.mismatched.length)
    parts.push(`  ${c.mismatched.length} of a different shape or dtype:`, ...list(c.mismatched));
  if (strict && c.missing.length)
    parts.push(`  ${c.missing.length} missing (the model has them, the file does not):`, ...list(c.missing));
  if (strict && c.unexpected.length)
    parts.push(`  ${c.unexpected.length} unexpected (in the file, not in the model):`, ...list(c.unexpected));
  return parts.length ? `${file} does not fit the model:\n${parts.join('\n')}` : '';
}

export interface LoadOptions {
  /** The parameters the model has (a graph or its specs). Without it everything in the file is loaded. */
  expect?: Graph | readonly ParamSpec[];
  /** Optimiser-state specs to check optimizer.safetensors against. */
  expectOptimizer?: readonly ParamSpec[];
  /** Missing or unexpected tensors are errors (default true). Shape and dtype differences always are. */
  strict?: boolean;
  /** Read optimizer.safetensors too (default true, when present). */
  optimizer?: boolean;
}

export interface LoadedCheckpoint {
  dir: string;
  params: ParameterStore;
  optimizerState: TensorStore | null;
  trainer: TrainerFile;
  /** What did not match (only non-empty when strict is false). */
  paramsCheck: TensorCheck;
}

function readChecked(
  path: string,
  expect: readonly ParamSpec[] | null,
  strict: boolean,
  into: TensorStore,
): TensorCheck {
  const f = SafetensorsFile.open(path);
  try {
    const have = new Map(f.header.entries.map((e) => [e.name, { shape: e.shape, dtype: e.dtype }]));
    const check = expect ? compareTensors(expect, have) : { missing: [], unexpected: [], mismatched: [] };
    const msg = describeCheck(path, check, strict);
    if (msg) throw new CheckpointError(msg);
    const skip = new Set(check.unexpected);
    for (const n of f.names) if (!skip.has(n)) into.put(n, f.read(n));
    return check;
  } finally {
    f.close();
  }
}

/** Reads a checkpoint directory, checking its tensors against the model. */
export function loadCheckpoint(dir: string, opts: LoadOptions = {}): LoadedCheckpoint {
  const target = resolve(dir);
  if (!existsSync(target)) {
    const parent = dirname(target);
    const base = basename(target);
    const left = existsSync(parent)
      ? readdirSync(parent).filter((n) => n.startsWith(`${base}.tmp-`) || n.startsWith(`${base}.old-`))
      : [];
    throw new CheckpointError(
      `no checkpoint at ${target}` +
        (left.length
          ? `; an interrupted save left ${left.map((n) => join(parent, n)).join(', ')} (a .tmp- folder holding ${TRAINER_FILE} is complete; rename it to ${base} to use it)`
          : ''),
    );
  }
  const tpath = join(target, TRAINER_FILE);
  let trainer: TrainerFile;
  try {
    trainer = JSON.parse(readFileSync(tpath, 'utf8')) as TrainerFile;
  } catch (err) {
    throw new CheckpointError(
      `${tpath}: cannot read the checkpoint's trainer file: ${(err as Error).message}`,
    );
  }
  if (trainer.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(`${tpath}: not a lemer checkpoint (format '${String(trainer.format)}')`);
  if (trainer.formatVersion > CHECKPOINT_VERSION)
    throw new CheckpointError(
      `${tpath}: checkpoint format ${trainer.formatVersion} is newer than this lemer reads (${CHECKPOINT_VERSION})`,
    );
  const strict = opts.strict ?? true;
  const params = new ParameterStore();
  const expect = opts.expect ? specsOf(opts.expect) : null;
  const paramsCheck = readChecked(join(target, MODEL_FILE), expect, strict, params);
  let optimizerState: TensorStore | null = null;
  const opath = join(target, OPTIMIZER_FILE);
  if ((opts.optimizer ?? true) && existsSync(opath)) {
    optimizerState = new TensorStore('optimizer state');
    readChecked(opath, opts.expectOptimizer ?? null, strict, optimizerState);
  } else if (opts.expectOptimizer && opts.expectOptimizer.length && strict && (opts.optimizer ?? true)) {
    throw new CheckpointError(
      `${target}: has no ${OPTIMIZER_FILE} (the optimiser state is needed to resume training)`,
    );
  }
  return { dir: target, params, optimizerState, trainer, paramsCheck };
}
