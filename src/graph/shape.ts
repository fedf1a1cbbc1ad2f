/**
 * Static shapes with named symbolic dimensions. A dim is a number (known size) or a
 * string naming a size known only at run time ('batch', 'seq'). Two different names
 * are treated as different sizes: that catches the classic text-length vs
 * speech-length mix-up at build time instead of deep inside ONNX Runtime.
 */
export type Dim = number | string;
export type Shape = readonly Dim[];

export const fmtShape = (s: Shape): string => `[${s.join(', ')}]`;

export const isStatic = (s: Shape): s is readonly number[] => s.every((d) => typeof d === 'number');

export const dimsEqual = (a: Dim, b: Dim): boolean => a === b;

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Product of the dims if all are known, else null. */
export function numel(s: Shape): number | null {
  let n = 1;
  for (const d of s) {
    if (typeof d !== 'number') return null;
    n *= d;
  }
  return n;
}

/** Numpy-style broadcast of two shapes; returns an error message instead of throwing. */
export function broadcastShapes(a: Shape, b: Shape): Shape | string {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (typeof da === 'string' && typeof db === 'number') out.push(db);
    else if (typeof da === 'number' && typeof db === 'string') out.push(da);
    else return `cannot broadcast ${fmtShape(a)} with ${fmtShape(b)} (dim ${i}: ${da} vs ${db})`;
  }
  return out;
}

/** Normalises a possibly negative axis against a rank, or returns null if out of range. */
export function normAxis(axis: number, rank: number): number | null {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : null;
}

let derived = 0;
/** A fresh symbolic dim for a size computed at run time (e.g. conv output length). */
export function derivedDim(hint: string): string {
  derived += 1;
  return `${hint}~${derived}`;
}

/** Symbolic dims that name an input size (plain identifiers), as opposed to derived ones. */
export const isNamedDim = (d: Dim): d is string =>
  typeof d === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(d);
