/** The graph engine: write a model once as a graph, differentiate it, run it on ONNX Runtime. */
export * from './dtype.js';
export * from './shape.js';
export { Graph, Tensor, GraphError, f, fs, type ParamSpec, type ParamInit, type ConstData } from './graph.js';
export * as ops from './ops/index.js';
export * as layers from './layers/index.js';
export { gradients } from './autodiff.js';
export { defineGradient, registeredGradientOps } from './gradients.js';
export { toOnnx, OPSET } from './onnx.js';
export * from './runtime.js';
export { TensorStore, ParameterStore } from './params.js';
export {
  addOptimizer,
  type OptimizerConfig,
  type OptimizerPlacement,
  HOST_PLACEMENT_MIN_PARAMS,
  type ParamGroup,
  type ScheduleConfig,
  scheduleFactor,
} from './optim.js';
export {
  Trainer,
  Predictor,
  buildTrainingGraph,
  type TrainerOptions,
  type TrainerState,
  type StepResult,
  type InputDecl,
  type BuildContext,
  type StateBackend,
  type LossTerm,
  type MetricValue,
  type TrainBuild,
  type TrainBuildResult,
  checkInferenceGraph,
} from './train.js';
export {
  buildLoopTrainingGraph,
  LOOP_STEPS_DIM,
  type LoopTrainingGraph,
  type LoopTrainingOptions,
} from './loop.js';
export { HostOptimizer } from './host-optim.js';
export { saveCheckpoint, loadCheckpoint } from './checkpoint.js';
export { readSafetensors, writeSafetensors, SafetensorsFile, parseSafetensors } from './safetensors.js';
