/** The graph engine: write a model once as a graph, differentiate it, run it on ONNX Runtime. */
export * from './dtype.js';
export * from './shape.js';
export { Graph, Tensor, GraphError, f, fs, type ParamSpec, type ParamInit, type ConstData } from './graph.js';
export * as ops from './ops/index.js';
export { gradients } from './autodiff.js';
export { defineGradient, registeredGradientOps } from './gradients.js';
export { toOnnx, OPSET } from './onnx.js';
export * from './runtime.js';
