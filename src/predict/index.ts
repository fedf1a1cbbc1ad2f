/** Using a trained model: the model folder, Lemer.load / predict, explanations, long recordings, transcripts. */
export {
  Lemer,
  type LoadOptions as LemerLoadOptions,
  type PredictInput,
  type Prediction,
  type SegmentPrediction,
  type TokenWeight,
  type FrameWeight,
  type BatchOptions as PredictBatchOptions,
  folderSource,
  type ModelSource,
} from './lemer.js';
export {
  prepareAudio,
  prepareText,
  AUDIO_WARN_SECONDS,
  AUDIO_MAX_SECONDS,
  MAX_TEXT_CHARS,
  type AudioInput,
  type SamplesInput,
  type PreparedAudio,
  type AudioLimits,
} from './input.js';
export { segmentAudio, type Segment, type SegmentOptions } from './segment.js';
export { whisperTranscriber, type Transcriber, type WhisperOptions } from './asr.js';
export { predictionSvg, segmentsSvg, writePlot, mergeWordPieces } from './plot.js';
export { writeModelFolder, type ExportSpec, type ExportOptions, type ExportResult } from './export.js';
export { exportRun, resolveRunPaths, type Int8Report } from './from-run.js';
export {
  readManifest as readModelManifest,
  ModelFolderError,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type ModelManifest,
} from './folder.js';
export {
  demoModel,
  demoModelDir,
  DEMO_MODEL_VERSION,
  type DemoModel,
  type DemoModelOptions,
} from './demo-model.js';
