/** The audio front end: decoding, resampling, waveform loading, log-mel features, CMVN, SpecAugment. */
export { decodeAudioFile, decodeAudioBytes, FLOAT_SAMPLE_WARN_LIMIT, type DecodedAudio } from './decode.js';
export { resample, resampledLength, type ResampleMethod, type ResampleOptions } from './resample.js';
export { loadAudio, mixToMono, normalizeWaveform, type LoadAudioOptions } from './load.js';
export {
  logMel,
  LogMelExtractor,
  cmvn,
  CMVN_STD_FLOOR,
  specAugment,
  melScale,
  inverseMelScale,
  melFilters,
  numFrames,
  windowFunction,
  FLOAT_EPSILON,
  type CmvnOptions,
  type Features,
  type LogMelOptions,
  type MelFilters,
  type SpecAugmentOptions,
  type SpecAugmented,
  type WindowType,
} from './logmel.js';
