import { readSafetensors } from './src/graph/safetensors.js';
import { loadConformerFolder } from './src/models/conformer/index.js';
const dir = process.argv[2];
const t = readSafetensors(dir + '/model.safetensors').tensors;
const b = loadConformerFolder(dir);
console.log([...t.keys()].filter((k) => !b.weights!.has(k)));
