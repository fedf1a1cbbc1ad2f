/** Every op of the engine. Importing this module also registers all gradient rules. */
export * from './elementwise.js';
export * from './shape.js';
export * from './reduce.js';
export * from './linalg.js';
export * from './norm.js';
export * from './random.js';
export * from './conv.js';
