/** `lemer graph export`: writes a registered model's inference or training graph as ONNX, for inspection (Netron). */
import { Option, type Command } from 'commander';
import type { Graph } from '../../graph/graph.js';
import { toOnnx } from '../../graph/onnx.js';
import { Predictor, buildTrainingGraph } from '../../graph/train.js';
import { getModel, modelNames } from '../../models/registry.js';
import { writeFileAtomic } from '../../util/fs.js';
import { contextOf, intOption, jsonOption, writeJsonResult, type CliIo } from '../common.js';

export interface GraphExportOptions {
  model: string;
  mode: 'infer' | 'train';
  microBatches?: number;
  /** Use ONNX Runtime's fused contrib ops as training does (default: standard ONNX only). */
  ortContribOps?: boolean;
}

export interface GraphExportSummary {
  model: string;
  mode: 'infer' | 'train';
  microBatches: number;
  nodes: number;
  inputs: number;
  outputs: number;
  parameters: number;
  parameterValues: number;
  /** Trainable parameters the optimiser updates (train mode). */
  trained?: number;
  bytes: number;
}

/** Builds the graph of a registered model and its ONNX bytes. */
export function exportModelGraph(opts: GraphExportOptions): {
  graph: Graph;
  bytes: Uint8Array;
  summary: GraphExportSummary;
} {
  const m = getModel(opts.model);
  const microBatches = opts.microBatches ?? 1;
  let graph: Graph;
  let trained: number | undefined;
  if (opts.mode === 'train') {
    const built = buildTrainingGraph({
      inputs: m.trainInputs,
      build: m.train,
      optimizer: m.optimizer,
      microBatches,
      name: `${m.name}-train`,
      ortContribOps: opts.ortContribOps ?? false,
    });
    graph = built.graph;
    trained = built.trained.length;
  } else if (opts.mode === 'infer') {
    if (microBatches !== 1) throw new Error('--micro-batches applies to --mode train only');
    graph = Predictor.buildGraph({
      inputs: m.inputs,
      build: m.infer,
      ortContribOps: opts.ortContribOps ?? false,
    });
  } else {
    throw new Error(`--mode must be infer or train, got '${String(opts.mode)}'`);
  }
  const bytes = toOnnx(graph, {
    docString: `lemer ${m.name} (${opts.mode}${opts.mode === 'train' ? `, ${microBatches} micro-batch(es)` : ''})`,
  });
  const params = [...graph.params.values()];
  return {
    graph,
    bytes,
    summary: {
      model: m.name,
      mode: opts.mode,
      microBatches,
      nodes: graph.nodes.length,
      inputs: graph.inputs.length,
      outputs: graph.outputs.length,
      parameters: params.length,
      parameterValues: params.reduce((a, p) => a + p.spec.shape.reduce((x, y) => x * y, 1), 0),
      trained,
      bytes: bytes.length,
    },
  };
}

interface CliOptions {
  ortContrib?: boolean;
  model: string;
  mode: 'infer' | 'train';
  out: string;
  microBatches?: number;
  json?: string;
}

export function registerGraph(program: Command, io: CliIo): void {
  const graph =
    program.commands.find((c) => c.name() === 'graph') ??
    program.command('graph').description('the model graphs lemer builds and runs');
  const exp = graph
    .command('export')
    .description(
      'write a model graph as ONNX (inference, or one whole training step) for inspection, e.g. in Netron',
    )
    .requiredOption('--model <name>', `registered model (${modelNames().join(', ')})`)
    .addOption(
      new Option('--mode <mode>', 'inference graph or training step')
        .choices(['infer', 'train'])
        .default('infer'),
    )
    .requiredOption('--out <file>', 'where to write the .onnx file (written atomically)')
    .option(
      '--micro-batches <m>',
      'train mode: gradient accumulation over M micro-batches inside the graph',
      intOption(1),
    )
    .option(
      '--ort-contrib',
      "use ONNX Runtime's fused contrib ops, as lemer's own training does (not standard ONNX)",
    );
  jsonOption(exp).action((_opts, cmd: Command) => {
    const ctx = contextOf(cmd, io);
    const o = cmd.opts<CliOptions>();
    const { bytes, summary } = exportModelGraph({
      model: o.model,
      mode: o.mode,
      microBatches: o.microBatches,
      ortContribOps: o.ortContrib ?? false,
    });
    writeFileAtomic(o.out, bytes);
    ctx.print(
      `wrote ${o.out}: ${summary.model} ${summary.mode} graph, ${summary.nodes} nodes, ${summary.inputs} inputs, ` +
        `${summary.outputs} outputs, ${summary.parameters} parameters (${summary.parameterValues} values` +
        `${summary.trained !== undefined ? `, ${summary.trained} trained` : ''}), ${(summary.bytes / 1024).toFixed(1)} KiB`,
    );
    writeJsonResult(o.json, { ...summary, out: o.out });
  });
}
