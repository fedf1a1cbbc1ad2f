/**
 * The inference worker: loads the model folder once and runs predictions. ONNX Runtime's run
 * blocks the thread it runs on, so it runs here, off the server's event loop: /healthz and
 * /metrics answer while a prediction runs.
 *
 * Dynamic batching: the requests that arrived while a run was in progress are run together
 * (up to `batchSize`, Lemer.predictBatch: batched by length), so that under load the service
 * gets the batch rate of `lemer predict` on many files; a lone request runs alone at once,
 * with no wait for company. When a batch fails (one bad input stops predictBatch), its
 * requests are run one by one, so that each gets its own answer.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { Lemer, type PredictInput } from '../predict/lemer.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

if (!parentPort) throw new Error('src/serve/worker.ts runs as a worker thread (started by InferencePool)');
const port: MessagePort = parentPort;
const send = (m: FromWorker) => port.postMessage(m);
const init = workerData as WorkerInit;

type PredictMessage = Extract<ToWorker, { type: 'predict' }>;

const inputOf = (m: PredictMessage): PredictInput => ({
  ...(m.audio ? { audio: m.audio } : {}),
  ...(m.text !== undefined ? { text: m.text } : {}),
  ...(m.context ? { context: m.context } : {}),
  ...(m.name !== undefined ? { name: m.name } : {}),
});

async function runOne(model: Lemer, m: PredictMessage): Promise<void> {
  send({ type: 'batch', size: 1 });
  try {
    send({ type: 'result', id: m.id, result: await model.predict(inputOf(m), { maxSeconds: m.maxSeconds }) });
  } catch (err) {
    send({ type: 'error', id: m.id, message: (err as Error).message });
  }
}

async function runBatch(model: Lemer, batch: PredictMessage[]): Promise<void> {
  if (batch.length === 1) return runOne(model, batch[0]);
  let results;
  try {
    results = await model.predictBatch(batch.map(inputOf), {
      batchSize: batch.length,
      limits: { maxSeconds: Math.min(...batch.map((m) => m.maxSeconds)) },
    });
  } catch {
    for (const m of batch) await runOne(model, m);
    return;
  }
  send({ type: 'batch', size: batch.length });
  batch.forEach((m, i) => send({ type: 'result', id: m.id, result: results[i] }));
}

async function main(): Promise<void> {
  let model: Lemer;
  try {
    model = await Lemer.load(init.dir, { int8: init.int8, threads: init.threads });
  } catch (err) {
    send({ type: 'failed', message: (err as Error).message });
    return;
  }
  send({
    type: 'ready',
    info: {
      dir: model.dir,
      kind: model.kind,
      labels: model.labels,
      speechOnly: model.speechOnly,
      graphFile: model.graphFile,
    },
  });
  const batchSize = Math.max(1, init.batchSize ?? 8);
  const queue: Exclude<ToWorker, { type: 'crash' }>[] = [];
  let running = false;
  // One drain loop at a time; messages that arrive meanwhile wait in `queue`.
  const drain = async () => {
    if (running) return;
    running = true;
    while (queue.length > 0) {
      // Let the messages that arrived during the last run in (a run may block this thread,
      // and its promise resolves before they are delivered).
      await new Promise((r) => setImmediate(r));
      const m = queue.shift()!;
      if (m.type === 'hold') {
        await new Promise((r) => setTimeout(r, m.ms));
        send({ type: 'hold-done', id: m.id });
        continue;
      }
      const batch = [m];
      while (batch.length < batchSize && queue[0]?.type === 'predict')
        batch.push(queue.shift() as PredictMessage);
      await runBatch(model, batch);
    }
    running = false;
  };
  port.on('message', (m: ToWorker) => {
    if (m.type === 'crash') {
      setImmediate(() => {
        throw new Error('crash requested (InferencePool.crashWorker)');
      });
      return;
    }
    queue.push(m);
    void drain();
  });
}

void main();
