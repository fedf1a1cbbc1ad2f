/** LE-MER: label embeddings, the fusion head, its losses and the model over two encoders. */
export * from './config.js';
export * from './head.js';
export * from './losses.js';
export * from './model.js';
export * from './label-embeddings.js';
