/** Self-supervised ("2nd stage") pretraining of speech encoders: `lemer pretrain`. */
export * from './batches.js';
export * from './conformer.js';
export * from './run.js';
export * from './wav2vec2.js';
export * from '../models/wav2vec2/quantizer.js';
export * from '../models/wav2vec2/pretraining.js';
export * from './codes.js';
