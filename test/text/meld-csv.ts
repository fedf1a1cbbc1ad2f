/**
 * The raw MELD train rows for the text tests (emotion names as in the file), read with
 * the project's CSV parser; the corpus reader proper is src/data/meld.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseCsv } from '../../src/data/manifest.js';

export const MELD_TRAIN = resolve('../shared/data/meld/train_sent_emo.csv');

export interface MeldRow {
  text: string;
  emotion: string;
  dialogue: number;
  turn: number;
}

/** The MELD train rows, or null when the shared data folder is absent. */
export function readMeldTrain(): MeldRow[] | null {
  if (!existsSync(MELD_TRAIN)) return null;
  const [header, ...rows] = parseCsv(readFileSync(MELD_TRAIN, 'utf8'), MELD_TRAIN).map((r) => r.fields);
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`${MELD_TRAIN}: no column ${name}`);
    return i;
  };
  const [u, e, d, t] = [col('Utterance'), col('Emotion'), col('Dialogue_ID'), col('Utterance_ID')];
  return rows
    .filter((r) => r.length === header.length)
    .map((r) => ({ text: r[u], emotion: r[e], dialogue: Number(r[d]), turn: Number(r[t]) }));
}
