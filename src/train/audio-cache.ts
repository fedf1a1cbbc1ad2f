/**
 * Speech inputs decoded once: each audio file is read, hashed (SHA-256 of its bytes),
 * decoded, mixed to mono, resampled and turned into what the speech encoder reads (a
 * waveform, or log-mel features with per-utterance normalisation). Results are kept in
 * memory and on disk, keyed by the file's content hash and the front-end settings, so a
 * second run (another fold, another model, a resumed run) never decodes again. Disk
 * entries are written atomically; a damaged entry is recomputed.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeAudioBytes } from '../audio/decode.js';
import { mixToMono } from '../audio/load.js';
import { resample } from '../audio/resample.js';
import { cmvn, logMel, type LogMelOptions } from '../audio/logmel.js';
import { writeFileAtomic } from '../util/fs.js';

/** What a speech encoder reads: log-mel frames (row-major [frames, bins]) or a waveform. */
export interface SpeechInput {
  /** [frames * bins] log-mel values, or [samples] for a waveform (bins = 1). */
  data: Float32Array;
  frames: number;
  bins: number;
}

export interface FrontEnd {
  kind: 'logmel' | 'waveform';
  sampleRate: number;
  logMel?: LogMelOptions & { normalize?: 'utterance' | 'none' | 'global' };
}

/** The cache root: `train.cacheDir`, else $LEMER_CACHE/train, else ~/.cache/lemer/train. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.LEMER_CACHE ? resolve(env.LEMER_CACHE) : join(homedir(), '.cache', 'lemer');
  return join(root, 'train');
}

const MAGIC = 0x4c4d4631; // 'LMF1'

function encodeEntry(x: SpeechInput): Uint8Array {
  const out = new Uint8Array(12 + x.data.byteLength);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, x.frames, true);
  v.setUint32(8, x.bins, true);
  out.set(new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength), 12);
  return out;
}

function decodeEntry(b: Uint8Array): SpeechInput | null {
  if (b.byteLength < 12) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== MAGIC) return null;
  const frames = v.getUint32(4, true);
  const bins = v.getUint32(8, true);
  if (b.byteLength !== 12 + 4 * frames * bins) return null;
  const data = new Float32Array(frames * bins);
  new Uint8Array(data.buffer).set(b.subarray(12));
  return { data, frames, bins };
}

export class AudioCache {
  private readonly memory = new Map<string, SpeechInput>();
  private readonly hashes = new Map<string, string>();

  constructor(
    /** Disk folder; null keeps everything in memory only. */
    readonly dir: string | null,
    readonly frontEnd: FrontEnd,
  ) {}

  private settingsKey(): string {
    return createHash('sha256').update(JSON.stringify(this.frontEnd)).digest('hex').slice(0, 16);
  }

  /** SHA-256 of the file's bytes (hex), memoised per path. */
  async contentHash(path: string): Promise<string> {
    const h = this.hashes.get(path);
    if (h) return h;
    const bytes = await readFile(path);
    const hex = createHash('sha256').update(bytes).digest('hex');
    this.hashes.set(path, hex);
    return hex;
  }

  /** The encoder input of one file; errors name the file. */
  async get(path: string): Promise<SpeechInput> {
    const mem = this.memory.get(path);
    if (mem) return mem;
    const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      throw new Error(err.code === 'ENOENT' ? `${path}: file not found` : `${path}: ${err.message}`);
    });
    const hash = createHash('sha256').update(bytes).digest('hex');
    this.hashes.set(path, hash);
    const file = this.dir ? join(this.dir, this.frontEnd.kind, this.settingsKey(), `${hash}.bin`) : null;
    if (file && existsSync(file)) {
      const hit = decodeEntry(readFileSync(file));
      if (hit) {
        this.memory.set(path, hit);
        return hit;
      }
    }
    const x = await this.compute(path, bytes);
    if (file) writeFileAtomic(file, encodeEntry(x));
    this.memory.set(path, x);
    return x;
  }

  private async compute(path: string, bytes: Uint8Array): Promise<SpeechInput> {
    const decoded = await decodeAudioBytes(bytes, path);
    let wave = mixToMono(decoded.channels);
    const sr = this.frontEnd.sampleRate;
    if (decoded.sampleRate !== sr) {
      try {
        wave = await resample(wave, decoded.sampleRate, sr);
      } catch (err) {
        throw new Error(`${path}: ${(err as Error).message}`);
      }
    }
    if (wave.length === 0) throw new Error(`${path}: the file holds no samples`);
    if (this.frontEnd.kind === 'waveform') return { data: wave, frames: wave.length, bins: 1 };
    const { normalize, ...opts } = this.frontEnd.logMel ?? {};
    const f = logMel(wave, { ...opts, sampleRate: sr });
    if (f.frames === 0) throw new Error(`${path}: too short for one log-mel frame (${wave.length} samples)`);
    // 'global': raw features here; the model normalises them with the training part's statistics.
    return normalize === 'none' || normalize === 'global' ? f : cmvn(f);
  }
}
