/**
 * The inference worker: loads the model folder once and runs predictions one at a time.
 * ONNX Runtime's run blocks the thread it runs on, so it runs here, off the server's event
 * loop: /healthz and /metrics answer while a prediction runs.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { Lemer } from '../predict/lemer.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

if (!parentPort) throw new Error('src/serve/worker.ts runs as a worker thread (started by InferencePool)');
const port: MessagePort = parentPort;
const send = (m: FromWorker) => port.postMessage(m);
const init = workerData as WorkerInit;

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
  // Messages are handled in order; Lemer serialises its session runs anyway.
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    if (m.type === 'crash') {
      setImmediate(() => {
        throw new Error('crash requested (InferencePool.crashWorker)');
      });
      return;
    }
    chain = chain.then(async () => {
      if (m.type === 'hold') {
        await new Promise((r) => setTimeout(r, m.ms));
        send({ type: 'hold-done', id: m.id });
        return;
      }
      try {
        const result = await model.predict(
          {
            ...(m.audio ? { audio: m.audio } : {}),
            ...(m.text !== undefined ? { text: m.text } : {}),
            ...(m.context ? { context: m.context } : {}),
            ...(m.name !== undefined ? { name: m.name } : {}),
          },
          { maxSeconds: m.maxSeconds },
        );
        send({ type: 'result', id: m.id, result });
      } catch (err) {
        send({ type: 'error', id: m.id, message: (err as Error).message });
      }
    });
  });
}

void main();
