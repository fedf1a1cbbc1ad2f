/**
 * The weights of a Hugging Face model folder, whichever way it holds them:
 * `model.safetensors`, `model.safetensors.index.json` + shards, `pytorch_model.bin`
 * (read by the safe pickle reader) or `pytorch_model.bin.index.json` + shards.
 * fp16 and bf16 come out as float32.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { HostTensor } from '../../graph/runtime.js';
import { SafetensorsError, SafetensorsFile } from '../../graph/safetensors.js';
import { HfLoadError } from './config.js';
import { readTorchStateDict } from './pickle.js';

export const WEIGHT_FILES = [
  'model.safetensors',
  'model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
] as const;

export interface HfWeights {
  tensors: Map<string, HostTensor>;
  /** The files read, in order (the index first for sharded checkpoints). */
  files: string[];
  /** How the file stored them: count of tensors per stored dtype ('F32', 'F16', 'BF16', 'I64', ...). */
  storedDtypes: Record<string, number>;
}

/** The weights file (or index) a folder would be loaded from, or null. */
export function findHfWeightsFile(dir: string): string | null {
  for (const f of WEIGHT_FILES) if (existsSync(join(dir, f))) return join(dir, f);
  return null;
}

/** Every tensor of the folder's checkpoint, under the checkpoint's own names. */
export function readHfWeights(dir: string): Map<string, HostTensor> {
  return loadHfWeights(dir).tensors;
}

/** readHfWeights with the files read and the stored dtypes. */
export function loadHfWeights(dir: string): HfWeights {
  const file = findHfWeightsFile(dir);
  if (!file) {
    let listing = '';
    try {
      listing = readdirSync(dir).sort().join(', ');
    } catch {
      throw new HfLoadError(`${dir}: no such folder`);
    }
    const onnx = existsSync(join(dir, 'onnx'))
      ? '; it has an onnx/ export, usable as a frozen ONNX encoder'
      : '';
    throw new HfLoadError(
      `${dir}: no weights: expected one of ${WEIGHT_FILES.join(', ')} (the folder holds: ${listing || 'nothing'})${onnx}`,
    );
  }
  const out: HfWeights = { tensors: new Map(), files: [], storedDtypes: {} };
  if (file.endsWith('.index.json')) readSharded(file, out);
  else readOne(file, out, null);
  return out;
}

function add(out: HfWeights, name: string, t: HostTensor, stored: string, file: string): void {
  if (out.tensors.has(name)) throw new HfLoadError(`${file}: tensor '${name}' appears in more than one file`);
  out.tensors.set(name, t);
  out.storedDtypes[stored] = (out.storedDtypes[stored] ?? 0) + 1;
}

const TORCH_STORED: Record<string, string> = {
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

function readOne(file: string, out: HfWeights, names: readonly string[] | null): void {
  out.files.push(file);
  if (file.endsWith('.safetensors')) {
    let f: SafetensorsFile;
    try {
      f = SafetensorsFile.open(file);
    } catch (err) {
      throw new HfLoadError(
        err instanceof SafetensorsError ? err.message : `${file}: ${(err as Error).message}`,
      );
    }
    try {
      for (const name of names ?? f.names) {
        if (!f.has(name))
          throw new HfLoadError(`${file}: the index puts '${name}' here, but the file lacks it`);
        let t: HostTensor;
        try {
          t = f.read(name);
        } catch (err) {
          throw new HfLoadError((err as Error).message);
        }
        add(out, name, t, f.entry(name).fileDtype, file);
      }
    } finally {
      f.close();
    }
    return;
  }
  // pytorch_model.bin: the safe reader gives float32 for fp16/bf16 storages; the stored dtype is not kept.
  const sd = readTorchStateDict(file);
  for (const name of names ?? [...sd.keys()]) {
    const t = sd.get(name);
    if (!t) throw new HfLoadError(`${file}: the index puts '${name}' here, but the file lacks it`);
    add(out, name, t, TORCH_STORED[t.dtype] ?? t.dtype, file);
  }
}

function readSharded(index: string, out: HfWeights): void {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(index, 'utf8'));
  } catch (err) {
    throw new HfLoadError(`${index}: not valid JSON (${(err as Error).message})`);
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new HfLoadError(`${index}: no "weight_map" object (tensor name -> shard file)`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.'))
      throw new HfLoadError(
        `${index}: weight_map["${name}"] must be a shard file name beside the index, got ${JSON.stringify(shard)}`,
      );
    const list = byShard.get(shard) ?? [];
    list.push(name);
    byShard.set(shard, list);
  }
  out.files.push(index);
  const dir = dirname(resolve(index));
  for (const [shard, names] of byShard) {
    const path = join(dir, shard);
    if (!existsSync(path))
      throw new HfLoadError(`${index}: shard ${shard} (${names.length} tensors) is missing`);
    readOne(path, out, names);
  }
}
