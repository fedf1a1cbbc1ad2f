/**
 * A minimal reader of the MELD CSV for tests (the real corpus reader lives in src/data):
 * RFC 4180 quoting ("" inside quotes), CRLF or LF line ends.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const MELD_TRAIN = resolve('../shared/data/meld/train_sent_emo.csv');

export interface MeldRow {
  text: string;
  emotion: string;
  dialogue: number;
  turn: number;
}

export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** The MELD train rows, or null when the shared data folder is absent. */
export function readMeldTrain(): MeldRow[] | null {
  if (!existsSync(MELD_TRAIN)) return null;
  const [header, ...rows] = parseCsv(readFileSync(MELD_TRAIN, 'utf8'));
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
