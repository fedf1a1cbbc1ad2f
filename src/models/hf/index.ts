/** Reading Hugging Face model folders: config.json, weights in any of their layouts, name mapping. */
export * from './config.js';
export * from './weights.js';
export * from './map.js';
export { readTorchStateDict, UnsafePickleError } from './pickle.js';
