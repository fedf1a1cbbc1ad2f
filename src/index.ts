/**
 * lemer as a library: corpora, audio front end, text tools, evaluation, configuration.
 * The command line (`lemer`, src/cli) is built on these same exports.
 */
export * from './data/index.js';
export {
  loadDemoCorpus,
  planDemoCorpus,
  defaultDemoDir,
  DEMO_LABELS,
  DEMO_NAME,
  DEMO_VERSION,
  DEMO_DEFAULT_PER_CLASS,
  type DemoCorpusOptions,
  type DemoPlanItem,
} from './data/demo.js';
export * from './audio/index.js';
export * from './text/tokenizer.js';
export * from './text/bert-json.js';
export * from './text/vocab.js';
export * from './text/tfidf.js';
export * from './text/stopwords.js';
export * from './eval/metrics.js';
export * from './eval/report.js';
export * from './config/schema.js';
export * from './config/load.js';
/** The graph engine (models as graphs, autodiff, training on ONNX Runtime): also at 'lemer/graph'. */
export * as graph from './graph/index.js';
export * from './config/engine.js';
/** The wav2vec2 family of speech encoders (wav2vec2, HuBERT, WavLM, wav2vec2-conformer). */
export * as wav2vec2 from './models/wav2vec2/index.js';
/** lemer's log-mel conformer (the paper's fbank-input speech encoder, trained from scratch). */
export * as conformer from './models/conformer/index.js';
/** Speech codes for encoders without a quantiser: seeded k-means over a layer's frames. */
export * as codes from './models/codes/index.js';
/** Self-supervised (wav2vec 2.0) pretraining: the Gumbel quantiser, the objective, `lemer pretrain`. */
export * as pretrain from './pretrain/index.js';
/** BERT and RoBERTa text encoders. */
export * as bert from './models/bert/index.js';
/** Hugging Face folders: config.json, weights in any layout (safe pytorch_model.bin reader), name mapping. */
export * as hf from './models/hf/index.js';
/** Encoders by model_type: `loadEncoder(dir)` for a Hugging Face folder, `createEncoder(type, config)` in place. */
export {
  loadEncoder,
  createEncoder,
  encoderModelTypes,
  registerEncoderFamily,
  type EncoderFamily,
  type LoadedEncoder,
} from './models/encoders.js';
/** Frozen encoders from ONNX exports (transformers.js folders). */
export { FrozenOnnxEncoder, loadOnnxEncoder, findOnnxFile, ONNX_VARIANTS } from './models/onnx/index.js';
/** The LE-MER head, its losses, the model over two encoders and the label embeddings. */
export * as lemer from './models/lemer/index.js';
/** Using a trained model: `const model = await Lemer.load(dir); await model.predict({ audio, text })`. */
export * from './predict/index.js';
