/** Messages between the server and its inference worker (structured-clone data only). */
import type { ModelKind } from '../predict/folder.js';
import type { Prediction } from '../predict/lemer.js';

export interface WorkerInit {
  dir: string;
  int8?: boolean;
  threads?: number;
  /** Most requests run together in one batch (default 8; 1: one at a time). */
  batchSize?: number;
}

export type ToWorker =
  | {
      type: 'predict';
      id: number;
      audio?: Uint8Array;
      text?: string;
      context?: string[];
      name?: string;
      maxSeconds: number;
    }
  /** Keeps the worker busy for `ms` (tests and readiness probes of the queue). */
  | { type: 'hold'; id: number; ms: number }
  /** Throws an uncaught error in the worker (tests of the pool's restart). */
  | { type: 'crash' };

export interface ModelInfo {
  dir: string;
  kind: ModelKind;
  labels: string[];
  speechOnly: boolean;
  graphFile: string;
}

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; result: Prediction }
  | { type: 'hold-done'; id: number }
  /** One model run of `size` predictions (before their results). */
  | { type: 'batch'; size: number }
  | { type: 'error'; id: number; message: string };
