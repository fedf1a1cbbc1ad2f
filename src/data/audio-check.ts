/**
 * Finds a corpus' audio that does not decode before long work starts (training, cross-
 * validation, prediction), instead of an hour into it: every file is read and decoded once,
 * a few at a time, with progress.
 */
import type { Corpus } from './types.js';

export interface CheckCorpusAudioOptions {
  /**
   * 'fail' (default): an error naming every file that does not decode (the first ten in the
   * message, all in `AudioCheckError.failures`). 'skip': their utterances are left out of the
   * returned corpus, with one warning giving the count.
   */
  onError?: 'fail' | 'skip';
  /** Files decoded at once (default 4: reading overlaps decoding). */
  concurrency?: number;
  /** Called after each file with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface AudioFailure {
  id: string;
  path: string;
  /** The decoder's message (it names the file and the problem). */
  error: string;
}

export interface AudioCheckReport {
  /** Utterances with audio that were checked. */
  checked: number;
  /** Those that do not decode (left out of the corpus with onError 'skip'). */
  failed: AudioFailure[];
  /** Seconds of audio per utterance id, for those that decode. */
  seconds: Map<string, number>;
  /** Decoder warnings (float samples far outside [-1, 1]), one per file. */
  warnings: string[];
}

/** The error checkCorpusAudio throws with onError 'fail'. */
export class AudioCheckError extends Error {
  constructor(
    readonly corpus: string,
    readonly failures: AudioFailure[],
    readonly checked: number,
  ) {
    const shown = failures.slice(0, 10).map((f) => `\n  ${f.error}`);
    const more = failures.length > shown.length ? `\n  ... and ${failures.length - shown.length} more` : '';
    super(
      `${failures.length} of ${checked} audio file(s) of corpus ${corpus} do not decode:${shown.join('')}${more}\n` +
        `fix or remove them, or leave their utterances out with --skip-bad-audio`,
    );
    this.name = 'AudioCheckError';
  }
}

/**
 * Decodes every audio file of `corpus` (WAV / FLAC: headers, sizes, codecs, NaN and infinite
 * samples). Returns the corpus (without the failing utterances when onError is 'skip'; the
 * same object when nothing failed) and a report with each file's duration. Text-only
 * utterances are not touched.
 */
export async function checkCorpusAudio(
  corpus: Corpus,
  options: CheckCorpusAudioOptions = {},
): Promise<{ corpus: Corpus; report: AudioCheckReport }> {
  const onError = options.onError ?? 'fail';
  if (onError !== 'fail' && onError !== 'skip')
    throw new Error(`checkCorpusAudio: onError must be 'fail' or 'skip', got ${String(onError)}`);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  // Loaded here: reading a corpus should not pay for the audio decoders.
  const { decodeAudioFile } = await import('../audio/decode.js');
  const withAudio = corpus.utterances.filter((u) => u.audioPath !== null);
  const failed: AudioFailure[] = [];
  const seconds = new Map<string, number>();
  const warnings: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < withAudio.length) {
      const u = withAudio[next++]!;
      try {
        const a = await decodeAudioFile(u.audioPath!);
        seconds.set(u.id, a.channels[0]!.length / a.sampleRate);
        warnings.push(...(a.warnings ?? []));
      } catch (err) {
        failed.push({ id: u.id, path: u.audioPath!, error: (err as Error).message });
      }
      options.onProgress?.(++done, withAudio.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, withAudio.length) }, worker));
  // Workers finish out of order: report in corpus order.
  const order = new Map(withAudio.map((u, i) => [u.id, i]));
  failed.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  const report: AudioCheckReport = { checked: withAudio.length, failed, seconds, warnings };
  if (failed.length === 0) return { corpus, report };
  if (onError === 'fail') throw new AudioCheckError(corpus.name, failed, withAudio.length);
  const bad = new Set(failed.map((f) => f.id));
  return {
    corpus: {
      ...corpus,
      utterances: corpus.utterances.filter((u) => !bad.has(u.id)),
      warnings: [
        ...corpus.warnings,
        `${failed.length} of ${withAudio.length} utterance(s) left out: their audio does not decode (first: ${failed[0]!.error})`,
      ],
    },
    report,
  };
}
