/** The audio front end: decoding, resampling, waveform loading, log-mel features, CMVN, SpecAugment. */
export { decodeAudioFile, decodeAudioBytes, type DecodedAudio } from './decode.js';
export { resample, resampledLength } from './resample.js';
export { loadAudio, mixToMono, normalizeWaveform, type LoadAudioOptions } from './load.js';
export {
  logMel,
  LogMelExtractor,
  cmvn,
  specAugment,
  melScale,
  inverseMelScale,
  melFilters,
  numFrames,
  windowFunction,
  FLOAT_EPSILON,
  type Features,
  type LogMelOptions,
  type MelFilters,
  type SpecAugmentOptions,
  type SpecAugmented,
  type WindowType,
} from './logmel.js';
