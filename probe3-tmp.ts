import { loadEncoder, createEncoder } from './src/models/encoders.js';
const e = loadEncoder('test/fixtures/models/conformer-tiny');
console.log(e.modelType, e.weights?.size, e.unused, e.files);
console.log(createEncoder('lemer-conformer', {}).hiddenSize);
