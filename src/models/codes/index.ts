/** Discrete speech codes: k-means over an encoder layer's frames (the quantiser's codes live in wav2vec2/quantizer.ts). */
export * from './kmeans.js';
export * from './frames.js';
