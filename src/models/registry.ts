/**
 * The models lemer can build by name (for `lemer graph export`, training and prediction
 * commands): each entry knows its inputs (batch-major, symbolic dims), its inference
 * outputs, its training loss and a default optimiser. Models register here with one entry
 * each (BERT, wav2vec2 and LE-MER join the toy transformer as they land).
 */
import type { Graph, Tensor } from '../graph/graph.js';
import type { OptimizerConfig } from '../graph/optim.js';
import type { BuildContext, InputDecl, TrainBuild } from '../graph/train.js';
import {
  TOY_TRANSFORMER_DEFAULTS,
  toyTransformer,
  toyTransformerInputs,
  toyTransformerLoss,
  toyTransformerTrainInputs,
} from './toy/transformer.js';

export interface ModelEntry {
  name: string;
  description: string;
  /** Inputs of the inference graph. */
  inputs: Record<string, InputDecl>;
  /** Inputs of the training graph (the inference inputs plus labels and the like). */
  trainInputs: Record<string, InputDecl>;
  /** Named outputs in inference mode. */
  infer: (g: Graph, inputs: Record<string, Tensor>, ctx: BuildContext) => Record<string, Tensor>;
  /** Loss (and metrics) in training mode. */
  train: TrainBuild;
  /** A sensible optimiser for this model. */
  optimizer: OptimizerConfig;
}

const models = new Map<string, ModelEntry>();

/** Adds a model; names are unique. */
export function registerModel(entry: ModelEntry): void {
  if (models.has(entry.name)) throw new Error(`model '${entry.name}' is registered twice`);
  models.set(entry.name, entry);
}

export function getModel(name: string): ModelEntry {
  const m = models.get(name);
  if (!m) throw new Error(`unknown model '${name}' (known: ${modelNames().join(', ')})`);
  return m;
}

export function modelNames(): string[] {
  return [...models.keys()];
}

registerModel({
  name: 'toy-transformer',
  description: `a small BERT-shaped transformer classifier (${TOY_TRANSFORMER_DEFAULTS.numLayers} layers, hidden ${TOY_TRANSFORMER_DEFAULTS.hiddenSize}) for engine checks`,
  inputs: toyTransformerInputs(),
  trainInputs: toyTransformerTrainInputs(),
  infer: (g, i) => {
    const logits = toyTransformer(g, { input_ids: i.input_ids, attention_mask: i.attention_mask });
    return { logits, probs: logits.softmax(-1) };
  },
  train: (g, i) => toyTransformerLoss(g, i),
  optimizer: { kind: 'adamw', lr: 1e-3, schedule: { warmupSteps: 100 }, maxGradNorm: 1 },
});
