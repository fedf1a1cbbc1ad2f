/**
 * What travels on the queue: one job per (configuration, fold), carrying everything a worker
 * on another machine needs to rebuild the run (the resolved config, the corpus spec and how
 * it was read, the corpus' content hash, the code version), and the result it posts back.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { LemerConfig } from '../config/schema.js';
import type { InvalidUtf8Policy } from '../data/utf8.js';
import { codeVersion, configHash, type FoldResult, type RunModel } from '../train/cv.js';

/** The BullMQ queue every lemer coordinator and worker of one Redis database shares. */
export const QUEUE_NAME = 'lemer-folds';
/** Redis key prefix of that queue. */
export const QUEUE_PREFIX = 'lemer';

/** How the coordinator read the corpus, so that a worker reads the same utterances. */
export interface CorpusLoad {
  labels: string[];
  classes?: '4' | 'all';
  split?: string;
  labelMap?: Record<string, string>;
  invalidUtf8?: InvalidUtf8Policy;
}

export interface FoldJobData {
  format: 'lemer-fold-job';
  /** For displays: `<fold>` (cv) or `<cell> <fold>` (grid, ablate). */
  title: string;
  cell: string | null;
  fold: string;
  model: RunModel;
  /** Resolved and validated on the coordinator; validated again on the worker. */
  config: LemerConfig;
  corpus: { spec: string; load: CorpusLoad; hash: string };
  codeVersion: string;
  /** Where it was submitted from (host name). */
  submittedFrom: string;
}

export interface FoldJobResult {
  format: 'lemer-fold-job-result';
  result: FoldResult;
  /** Host name and `host:pid` of the worker that finished it. */
  machine: string;
  worker: string;
  /** Seconds from the processor's start to its result (setup included). */
  seconds: number;
  /** True when it continued from a checkpoint another (killed) worker left. */
  resumed: boolean;
  /** The fold's curves as the worker drew them (SVG text, PNG base64), so the coordinator need not. */
  curves?: { svg: string; png: string };
}

/** Progress a worker posts (BullMQ job progress), shown by the coordinator. */
export interface FoldJobProgress {
  state: 'loading' | 'training' | 'refused';
  machine: string;
  worker: string;
  /** Epochs done (fractional within an epoch) of `epochs` (summed over the fold's models). */
  epoch?: number;
  epochs?: number;
  /** Seconds left, from the worker's own pace; null before it has one. */
  etaSeconds?: number | null;
  /** For `refused`: why. */
  message?: string;
}

/** The host name, as messages name machines. */
export function machineName(): string {
  return hostname();
}

let version: string | null = null;

/**
 * The code version jobs carry and workers compare: lemer's version and git commit;
 * `LEMER_CODE_VERSION` overrides it (to pin a fleet, and for tests).
 */
export function queueCodeVersion(): string {
  const pinned = process.env.LEMER_CODE_VERSION;
  if (pinned) return pinned;
  version ??= codeVersion();
  return version;
}

/**
 * A job's identity: the hash of its resolved config (without the runtime section), the
 * corpus' content, the code version, the model and the fold. The same run submitted again
 * gets the same id, so that BullMQ hands back the finished job instead of running it twice.
 */
export function jobIdentity(
  d: Pick<FoldJobData, 'config' | 'corpus' | 'codeVersion' | 'model' | 'fold'>,
): string {
  const h = createHash('sha256')
    .update(JSON.stringify([configHash(d.config), d.corpus.hash, d.codeVersion, d.model, d.fold]))
    .digest('hex');
  // BullMQ job ids must not be plain integers nor contain ':'.
  return `fold-${h.slice(0, 32)}`;
}
