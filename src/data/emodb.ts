import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Corpus, Utterance } from './types.js';

/** The sentence of each text code (from the release's documentation). */
export const EMODB_SENTENCES: Record<string, string> = {
  a01: 'Der Lappen liegt auf dem Eisschrank.',
  a02: 'Das will sie am Mittwoch abgeben.',
  a04: 'Heute abend könnte ich es ihm sagen.',
  a05: 'Das schwarze Blatt Papier befindet sich da oben neben dem Holzstück.',
  a07: 'In sieben Stunden wird es soweit sein.',
  b01: 'Was sind denn das für Tüten, die da unter dem Tisch stehen?',
  b02: 'Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.',
  b03: 'An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.',
  b09: 'Ich will das eben wegbringen und dann mit Karl was trinken gehen.',
  b10: 'Die wird auf dem Platz sein, wo wir sie immer hinlegen.',
};

/** Emotion letters (German initials) to the project's label codes. */
export const EMODB_EMOTIONS: Record<string, string> = {
  W: 'ang', // Wut
  F: 'hap', // Freude
  T: 'sad', // Trauer
  N: 'neu', // neutral
  L: 'bor', // Langeweile
  E: 'dis', // Ekel
  A: 'fea', // Angst
};

export const EMODB_LABELS_4 = ['ang', 'hap', 'sad', 'neu'];
export const EMODB_LABELS_ALL = ['ang', 'hap', 'sad', 'neu', 'bor', 'dis', 'fea'];

export interface EmodbOptions {
  /** '4' (default): W F T N, 339 files. 'all': the seven emotions, 535 files. */
  classes?: '4' | 'all';
}

const NAME = /^(\d\d)([a-z]\d\d)([A-Z])([a-z])\.wav$/;

/**
 * Reads EmoDB from its folder (the one holding `wav/`, or the wav folder itself). File names
 * are `SSTTTEV.wav`: speaker, text code, emotion letter, version. Speaker and session are
 * `SS` (leave-one-speaker-out); each utterance is its own dialogue (EmoDB has no dialogues).
 */
export async function readEmodb(root: string, opts: EmodbOptions = {}): Promise<Corpus> {
  const base = resolve(root);
  const classes = opts.classes ?? '4';
  const labels = classes === '4' ? EMODB_LABELS_4 : EMODB_LABELS_ALL;
  let wavDir = join(base, 'wav');
  try {
    if (!(await stat(wavDir)).isDirectory()) wavDir = base;
  } catch {
    wavDir = base;
  }
  let names: string[];
  try {
    names = (await readdir(wavDir)).sort();
  } catch (err) {
    throw new Error(
      `EmoDB folder not readable: ${wavDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  const utterances: Utterance[] = [];
  const odd: string[] = [];
  for (const name of names) {
    if (!name.toLowerCase().endsWith('.wav')) continue;
    const m = NAME.exec(name);
    if (!m) {
      odd.push(name);
      continue;
    }
    const [, speaker, code, letter] = m;
    const text = EMODB_SENTENCES[code];
    if (text === undefined) throw new Error(`${join(wavDir, name)}: unknown EmoDB sentence code "${code}"`);
    const label = EMODB_EMOTIONS[letter];
    if (label === undefined)
      throw new Error(`${join(wavDir, name)}: unknown EmoDB emotion letter "${letter}"`);
    if (!labels.includes(label)) continue;
    const id = name.slice(0, -4);
    utterances.push({
      id,
      audioPath: join(wavDir, name),
      text,
      label,
      speaker,
      session: speaker,
      dialogue: id,
      turn: 0,
    });
  }
  const warnings: string[] = [];
  if (odd.length > 0)
    warnings.push(
      `${odd.length} wav file(s) not named SSTTTEV.wav skipped in ${wavDir} (first: ${odd.slice(0, 3).join(', ')})`,
    );
  if (utterances.length === 0) throw new Error(`no EmoDB wav files (SSTTTEV.wav) found in ${wavDir}`);
  return { name: 'emodb', labels: [...labels], utterances, warnings };
}
