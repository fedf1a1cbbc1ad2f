/**
 * What the training loop needs from a model: the shape `lemerModel(spec)` returns
 * (src/models/lemer/model.ts), of which fit and cv use only these members.
 */
import type { Graph, Tensor } from '../graph/graph.js';
import type { BuildContext, InputDecl, TrainBuild } from '../graph/train.js';

export type ModelKind = 'lemer' | 'text' | 'speech';

export interface TrainableModel {
  inputs: Record<string, InputDecl>;
  trainInputs: Record<string, InputDecl>;
  infer(g: Graph, inputs: Record<string, Tensor>, ctx: BuildContext): Record<string, Tensor>;
  train: TrainBuild;
  paramPrefixes: { text: string; speech: string; head: string };
}
