// Public API of the data layer: corpus readers, manifest, dialogue context, folds.
// demo.ts is not re-exported: loadCorpus('demo') loads it on demand.
export * from './types.js';
export * from './corpus.js';
export * from './manifest.js';
export * from './iemocap.js';
export * from './emodb.js';
export * from './meld.js';
export * from './context.js';
export * from './folds.js';
export * from './utf8.js';
export * from './audio-check.js';
