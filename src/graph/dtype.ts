/** Element types the engine knows, named as in ONNX Runtime's JavaScript API. */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8';

/** TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};

export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export const isFloat = (d: DType): d is 'float32' | 'float64' => d === 'float32' || d === 'float64';

export function bytesPerElement(d: DType): number {
  return { float32: 4, float64: 8, int64: 8, int32: 4, bool: 1, uint8: 1 }[d];
}

/** A new zero-filled array of the right kind for a dtype. */
export function allocate(d: DType, n: number): TypedArray {
  switch (d) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'bool':
    case 'uint8':
      return new Uint8Array(n);
  }
}

/** The dtype a typed array holds (bool and uint8 share Uint8Array; uint8 is returned). */
export function dtypeOf(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  return 'uint8';
}
