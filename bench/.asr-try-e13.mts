import { whisperTranscriber } from '../src/predict/asr.js';
const t = await whisperTranscriber('/tmp/e13/whisper-tiny');
const x = new Float32Array(16000 * 2).map((_, i) => 0.1 * Math.sin(i / 10));
const t0 = performance.now();
console.log(JSON.stringify(await t.transcribe(x, 16000)), t.source, ((performance.now() - t0) / 1000).toFixed(2));
console.log(JSON.stringify(await t.transcribe(x, 16000)));
await t.release?.();
