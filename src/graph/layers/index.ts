/** Layers that own parameters (Hugging Face names and layouts) and the losses models use. */
export * from './linear.js';
export * from './norm.js';
export * from './activations.js';
export * from './conv.js';
export * from './attention.js';
export * from './pooling.js';
export * from './losses.js';
export * from './ssl.js';
