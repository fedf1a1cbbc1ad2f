import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseCsv } from './manifest.js';
import type { Corpus, Utterance } from './types.js';
import { decodeUtf8, firstInvalidUtf8, invalidUtf8Lines, type InvalidUtf8Policy } from './utf8.js';

export type MeldSplit = 'train' | 'dev' | 'test';
const SPLITS: MeldSplit[] = ['train', 'dev', 'test'];

/** MELD emotion names to the project's label codes (the 4-class view: anger, joy, sadness, neutral). */
export const MELD_EMOTIONS: Record<string, string> = {
  anger: 'ang',
  joy: 'hap',
  sadness: 'sad',
  neutral: 'neu',
  surprise: 'sur',
  disgust: 'dis',
  fear: 'fea',
};
export const MELD_LABELS_4 = ['ang', 'hap', 'sad', 'neu'];
export const MELD_LABELS_ALL = ['ang', 'hap', 'sad', 'neu', 'sur', 'dis', 'fea'];

export interface MeldOptions {
  /** One split or several (read in the order given). Default 'train'. */
  split?: MeldSplit | MeldSplit[];
  /** '4' (default): anger, joy, sadness, neutral. 'all': the seven emotions. */
  classes?: '4' | 'all';
  /**
   * Invalid UTF-8 in a file that is otherwise UTF-8: 'error' (default, naming file and line)
   * or 'warn' (read as U+FFFD, counted). A file with no UTF-8 multi-byte sequence at all is
   * taken for a Windows-1252 copy of MELD and read as such, with a warning, either way.
   */
  invalidUtf8?: InvalidUtf8Policy;
}

/** Parses 'train', 'dev', 'test' or several joined by '+' or ',' ('train+dev'). */
export function parseMeldSplits(spec: string): MeldSplit[] {
  const parts = spec.split(/[+,]/).map((p) => p.trim());
  for (const p of parts) {
    if (!(SPLITS as string[]).includes(p)) {
      throw new Error(
        `unknown MELD split "${p}" in "${spec}" (expected train, dev, test, or several joined by '+')`,
      );
    }
  }
  return [...new Set(parts)] as MeldSplit[];
}

// Windows-1252's characters for bytes 0x80-0x9F; the five bytes it leaves undefined map to
// the C1 control of the same value, as Python's and browsers' decoders do.
const CP1252_HIGH =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';
const TO_BYTE = new Map<string, number>();
for (let b = 0xa0; b <= 0xff; b++) TO_BYTE.set(String.fromCharCode(b), b);
for (let k = 0; k < 32; k++) {
  TO_BYTE.set(CP1252_HIGH[k], 0x80 + k);
  TO_BYTE.set(String.fromCharCode(0x80 + k), 0x80 + k); // C1 controls from a latin-1 decode
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** One pass: replaces each run of characters whose cp1252/latin-1 bytes form valid multi-byte UTF-8. */
function repairPass(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const lead = TO_BYTE.get(s[i]);
    const need =
      lead === undefined
        ? 0
        : lead >= 0xc2 && lead <= 0xdf
          ? 1
          : lead >= 0xe0 && lead <= 0xef
            ? 2
            : lead >= 0xf0 && lead <= 0xf4
              ? 3
              : 0;
    if (need > 0) {
      const bytes = [lead!];
      for (let k = 1; k <= need; k++) {
        const b = TO_BYTE.get(s[i + k] ?? '');
        if (b === undefined || b < 0x80 || b > 0xbf) break;
        bytes.push(b);
      }
      if (bytes.length === need + 1) {
        try {
          out += utf8.decode(new Uint8Array(bytes));
          i += need + 1;
          continue;
        } catch {
          // Not valid UTF-8 (e.g. an overlong form): keep the characters as they are.
        }
      }
    }
    out += s[i];
    i++;
  }
  return out;
}

/**
 * Repairs the common mis-encodings in MELD's text, where unambiguous:
 * UTF-8 read as Windows-1252 or latin-1 (`â€™` -> `’`, `cafÃ©` -> `café`), the same done twice
 * (`Ã¢Â€Â™` -> `’`), and lone C1 control characters that are Windows-1252 bytes read as latin-1
 * (`\u0092` -> `’`). Correct text is left as it is: a character sequence is only replaced when
 * its bytes form a valid multi-byte UTF-8 sequence, which ordinary text almost never does.
 */
export function repairMojibake(s: string): string {
  // Fast path: nothing outside ASCII that could be part of a mis-encoding.
  if (
    !/[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]/.test(
      s,
    )
  )
    return s;
  let prev = s;
  for (let pass = 0; pass < 3; pass++) {
    const next = repairPass(prev);
    if (next === prev) break;
    prev = next;
  }
  // Lone C1 controls never belong in text: they are cp1252 bytes read as latin-1.
  return prev.replace(/[\u0080-\u009f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]).normalize('NFC');
}

/** True when the bytes hold at least one valid UTF-8 multi-byte sequence (so the file is meant as UTF-8). */
function hasUtf8MultiByte(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) {
    if (b[i]! < 0xc2) continue;
    const end = Math.min(b.length, i + 4);
    // A lead byte followed by its continuation bytes that validate as one character.
    const need = b[i]! <= 0xdf ? 2 : b[i]! <= 0xef ? 3 : 4;
    if (i + need <= end && firstInvalidUtf8(b, i, i + need) < 0) return true;
  }
  return false;
}

const REQUIRED = ['utterance', 'speaker', 'emotion', 'dialogue_id', 'utterance_id'];

/**
 * Reads MELD's `<split>_sent_emo.csv` (text only: audioPath is null). Ids are
 * `<split>_dia<D>_utt<U>` (the names of MELD's video clips), dialogues `<split>_dia<D>`, turns
 * the 0-based position in the dialogue ordered by Utterance_ID. `session` is the split name,
 * so `fixedSplit` reproduces the official train/dev/test protocol; `speaker` is the character.
 * `dialogueTurns` keeps every utterance of each dialogue, whatever its emotion, for context.
 */
export async function readMeld(dir: string, opts: MeldOptions = {}): Promise<Corpus> {
  const base = resolve(dir);
  const splits = Array.isArray(opts.split) ? opts.split : [opts.split ?? 'train'];
  const classes = opts.classes ?? '4';
  const labels = classes === '4' ? MELD_LABELS_4 : MELD_LABELS_ALL;
  const utterances: Utterance[] = [];
  const dialogueTurns = new Map<string, { id: string; text: string; speaker: string }[]>();
  const warnings: string[] = [];
  for (const split of splits) {
    if (!SPLITS.includes(split))
      throw new Error(`unknown MELD split "${split}" (expected train, dev or test)`);
    const file = join(base, `${split}_sent_emo.csv`);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw new Error(
        `MELD file not readable: ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    // Some copies are Windows-1252 rather than UTF-8: decode strictly, fall back to cp1252
    // where the file has no UTF-8 at all; invalid bytes in a UTF-8 file follow the policy.
    let text: string;
    if (firstInvalidUtf8(bytes) < 0 || hasUtf8MultiByte(bytes)) {
      const d = decodeUtf8(bytes, file, opts.invalidUtf8);
      text = d.text;
      if (d.warning) warnings.push(d.warning);
    } else {
      text = new TextDecoder('windows-1252').decode(bytes);
      const bad = invalidUtf8Lines(bytes);
      warnings.push(
        `${file}: not valid UTF-8, read as Windows-1252 (${bad.length} line(s) with non-UTF-8 bytes, first: line ${bad[0]?.line})`,
      );
    }
    const records = parseCsv(text, file);
    if (records.length === 0) throw new Error(`${file}: empty file`);
    const header = records[0].fields.map((h) => h.trim().toLowerCase());
    const col: Record<string, number> = {};
    for (const name of REQUIRED) {
      col[name] = header.indexOf(name);
      if (col[name] < 0)
        throw new Error(`${file}: column "${name}" missing from the header (${records[0].fields.join(',')})`);
    }
    const rows: { d: number; u: number; text: string; speaker: string; label: string; line: number }[] = [];
    const seen = new Map<string, number>();
    for (const r of records.slice(1)) {
      const f = r.fields;
      if (f.length !== header.length)
        throw new Error(`${file}:${r.line}: ${f.length} fields, but the header has ${header.length}`);
      const d = Number(f[col.dialogue_id]);
      const u = Number(f[col.utterance_id]);
      if (!Number.isInteger(d) || !Number.isInteger(u)) {
        throw new Error(
          `${file}:${r.line}: Dialogue_ID / Utterance_ID must be whole numbers, got "${f[col.dialogue_id]}" / "${f[col.utterance_id]}"`,
        );
      }
      const key = `${d}_${u}`;
      const first = seen.get(key);
      if (first !== undefined)
        throw new Error(`${file}:${r.line}: dialogue ${d} utterance ${u} repeats line ${first}`);
      seen.set(key, r.line);
      const emotion = f[col.emotion].trim().toLowerCase();
      const label = MELD_EMOTIONS[emotion];
      if (label === undefined)
        throw new Error(
          `${file}:${r.line}: unknown emotion "${f[col.emotion]}" (expected ${Object.keys(MELD_EMOTIONS).join(', ')})`,
        );
      rows.push({
        d,
        u,
        text: repairMojibake(f[col.utterance]).trim(),
        speaker: repairMojibake(f[col.speaker]).trim(),
        label,
        line: r.line,
      });
    }
    rows.sort((a, b) => a.d - b.d || a.u - b.u);
    let turn = 0;
    for (let k = 0; k < rows.length; k++) {
      const r = rows[k];
      if (k === 0 || rows[k - 1].d !== r.d) turn = 0;
      const dialogue = `${split}_dia${r.d}`;
      const id = `${dialogue}_utt${r.u}`;
      let list = dialogueTurns.get(dialogue);
      if (!list) dialogueTurns.set(dialogue, (list = []));
      list.push({ id, text: r.text, speaker: r.speaker });
      if (labels.includes(r.label)) {
        utterances.push({
          id,
          audioPath: null,
          text: r.text,
          label: r.label,
          speaker: r.speaker,
          session: split,
          dialogue,
          turn,
        });
      }
      turn++;
    }
  }
  return { name: 'meld', labels: [...labels], utterances, warnings, dialogueTurns };
}
