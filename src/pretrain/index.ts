/** Self-supervised ("2nd stage") pretraining of speech encoders: `lemer pretrain`. */
export * from './batches.js';
export * from './conformer.js';
export * from './run.js';
