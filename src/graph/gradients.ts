/**
 * The table of gradient rules: one rule per op type, registered next to the op's
 * builder (ops/*.ts). A rule gets the forward node and the gradients of its outputs
 * and returns the gradients of its inputs, built from ordinary ops (hence standard
 * ONNX nodes that every execution provider runs).
 */
import type { Graph, NodeRecord, Tensor } from './graph.js';

export interface GradContext {
  g: Graph;
  node: NodeRecord;
  /** The node's inputs (null for omitted optional inputs). */
  x: (Tensor | null)[];
  /** The node's outputs. */
  y: Tensor[];
  /** Gradient of the loss w.r.t. each output; null where no gradient flows into that output. */
  dy: (Tensor | null)[];
  /** Whether input i needs a gradient: rules skip the work for the others. */
  needs: (i: number) => boolean;
}

/** Returns one entry per input: its gradient, or null/undefined where it has none. */
export type GradRule = (ctx: GradContext) => (Tensor | null | undefined)[];

const rules = new Map<string, GradRule>();

export function defineGradient(op: string, rule: GradRule): void {
  if (rules.has(op)) throw new Error(`gradient rule for ${op} is defined twice`);
  rules.set(op, rule);
}

export function gradientRule(op: string): GradRule | undefined {
  return rules.get(op);
}

/** Ops whose outputs carry no gradient (comparisons, shapes, random draws, ...). */
const nonDifferentiable = new Set<string>();
export function defineNonDifferentiable(...ops: string[]): void {
  for (const op of ops) nonDifferentiable.add(op);
}
export const isNonDifferentiable = (op: string): boolean => nonDifferentiable.has(op);

export const registeredGradientOps = (): string[] => [...rules.keys()].sort();
