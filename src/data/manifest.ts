import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { parse, type Options } from 'csv-parse/sync';
import type { Corpus, Utterance } from './types.js';
import { decodeUtf8, type InvalidUtf8Policy } from './utf8.js';

/** One CSV record: its fields and the 1-based physical line where it starts (for error messages). */
export interface CsvRecord {
  fields: string[];
  line: number;
}

type CsvParseError = Error & { code?: string; bytes?: number };

const CSV_OPTIONS: Options = {
  bom: true,
  // Both LF and CRLF end a record, in the same file too (hand-edited files mix them).
  record_delimiter: ['\r\n', '\n'],
  relax_column_count: true, // the callers say which line has the wrong number of fields
  skip_empty_lines: true,
  info: true,
};

/** Line (1-based) of the first non-blank line at or after byte offset `at` of `text`'s UTF-8 bytes. */
function lineAtByte(text: string, at: number): number {
  const b = Buffer.from(text, 'utf8');
  let line = 1;
  for (let i = 0; i < Math.min(at, b.length); i++) if (b[i] === 0x0a) line++;
  for (let i = at; i < b.length && (b[i] === 0x0a || b[i] === 0x0d); i++) if (b[i] === 0x0a) line++;
  return line;
}

/**
 * RFC 4180 CSV with csv-parse: comma-separated, fields optionally in double quotes, `""` inside
 * quotes is one quote, and quoted fields may hold commas and line breaks. LF and CRLF both end
 * a record; blank lines are skipped. A quote inside an unquoted field is kept literally (common
 * in hand-made files); text after a closing quote, or a quote never closed, is an error naming
 * the line. `source` names the file in errors.
 */
export function parseCsv(text: string, source = '<csv>'): CsvRecord[] {
  type Row = { record: string[]; info: { bytes: number } };
  // Lines come from csv-parse's byte offsets (info.bytes: the end of each record, delimiter
  // included), not its line counter, which counts a CRLF inside quotes twice.
  const toRecords = (rows: Row[]): CsvRecord[] => {
    const buf = Buffer.from(text, 'utf8');
    let pos = 0;
    let line = 1;
    return rows.map((r) => {
      // Blank lines skipped before the record.
      for (; pos < buf.length && (buf[pos] === 0x0a || buf[pos] === 0x0d); pos++)
        if (buf[pos] === 0x0a) line++;
      const start = line;
      for (; pos < r.info.bytes; pos++) if (buf[pos] === 0x0a) line++;
      return { fields: r.record, line: start };
    });
  };
  // For errors too, the line comes from a byte offset: err.bytes is where the failing record
  // starts (csv-parse's err.lines and bytes_records drift after CRLFs inside quotes).
  const fail = (err: CsvParseError): never => {
    const line = lineAtByte(text, err.bytes ?? 0);
    if (err.code === 'CSV_QUOTE_NOT_CLOSED') throw new Error(`${source}:${line}: quoted field never closed`);
    if (err.code === 'CSV_INVALID_CLOSING_QUOTE')
      throw new Error(
        `${source}:${line}: unexpected text after a closing quote (a quote inside a quoted field must be doubled: "")`,
      );
    throw new Error(`${source}:${line}: ${err.message}`);
  };
  try {
    return toRecords(parse(text, { ...CSV_OPTIONS, relax_quotes: false }) as unknown as Row[]);
  } catch (err) {
    const e = err as CsvParseError;
    if (e.code !== 'INVALID_OPENING_QUOTE') fail(e); // csv-parse's code for it has no CSV_ prefix
  }
  // Quotes inside unquoted fields: csv-parse keeps them only in relax_quotes mode, which also
  // takes text after a closing quote literally. The strict pass above has checked every record
  // up to the first such quote; the rest is read leniently.
  try {
    return toRecords(parse(text, { ...CSV_OPTIONS, relax_quotes: true }) as unknown as Row[]);
  } catch (err) {
    return fail(err as CsvParseError);
  }
}

/** A manifest row after column mapping, before validation. */
interface RawRow {
  line: number;
  values: Map<string, unknown>;
}

const KNOWN_COLUMNS = ['id', 'audio', 'text', 'label', 'speaker', 'session', 'fold', 'dialogue', 'turn'];

function readCsvRows(text: string, file: string): { rows: RawRow[]; unknown: string[] } {
  const records = parseCsv(text, file);
  if (records.length === 0)
    throw new Error(`${file}: empty manifest (expected a header line: ${KNOWN_COLUMNS.join(',')})`);
  const header = records[0].fields.map((h) => h.trim().toLowerCase());
  const seen = new Set<string>();
  for (const h of header) {
    if (h !== '' && seen.has(h))
      throw new Error(`${file}:${records[0].line}: column "${h}" appears twice in the header`);
    seen.add(h);
  }
  const rows: RawRow[] = [];
  for (const r of records.slice(1)) {
    if (r.fields.length !== header.length) {
      throw new Error(`${file}:${r.line}: ${r.fields.length} fields, but the header has ${header.length}`);
    }
    const values = new Map<string, unknown>();
    header.forEach((h, k) => {
      if (r.fields[k] !== '') values.set(h, r.fields[k]);
    });
    rows.push({ line: r.line, values });
  }
  return { rows, unknown: header.filter((h) => h !== '' && !KNOWN_COLUMNS.includes(h)) };
}

function readJsonlRows(text: string, file: string): { rows: RawRow[]; unknown: string[] } {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: RawRow[] = [];
  const unknown = new Set<string>();
  text.split(/\r?\n/).forEach((raw, k) => {
    const line = k + 1;
    if (raw.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      throw new Error(`${file}:${line}: not valid JSON (${(err as Error).message})`);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new Error(`${file}:${line}: each line must be a JSON object`);
    }
    const values = new Map<string, unknown>();
    for (const [key, v] of Object.entries(obj)) {
      const h = key.toLowerCase();
      if (!KNOWN_COLUMNS.includes(h)) unknown.add(key);
      if (v !== null && v !== undefined && v !== '') values.set(h, v);
    }
    rows.push({ line, values });
  });
  return { rows, unknown: [...unknown] };
}

function str(row: RawRow, key: string, file: string): string | undefined {
  const v = row.values.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`${file}:${row.line}: "${key}" must be a string, got ${JSON.stringify(v)}`);
}

export interface ReadManifestOptions {
  /** The label set, in order. A row with a label outside it is an error. Default: sorted unique labels. */
  labels?: string[];
  /** Check that every audio file exists (default true). */
  checkAudio?: boolean;
  /** Invalid UTF-8: 'error' (default, naming file and line) or 'warn' (read as U+FFFD, counted). */
  invalidUtf8?: InvalidUtf8Policy;
}

/**
 * Reads a corpus manifest: JSON Lines (`.jsonl`, `.ndjson`) or CSV (`.csv`), one utterance per
 * row, columns `id, audio, text, label, speaker, session` (or `fold`), `dialogue`, `turn`.
 * Required: id, label, and audio or text. Audio paths are relative to the manifest's folder.
 * Defaults: speaker 'unknown', session = speaker, dialogue = id, turn = the row's position
 * among the earlier rows of its dialogue (so 0 where dialogue defaults to id).
 */
export async function readManifest(path: string, opts: ReadManifestOptions = {}): Promise<Corpus> {
  const file = resolve(path);
  const ext = extname(file).toLowerCase();
  if (!['.jsonl', '.ndjson', '.csv'].includes(ext)) {
    throw new Error(`${file}: unknown manifest format "${ext}" (expected .jsonl, .ndjson or .csv)`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new Error(
      `${file}: cannot read manifest (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  const decoded = decodeUtf8(bytes, file, opts.invalidUtf8);
  const text = decoded.text;
  const { rows, unknown } = ext === '.csv' ? readCsvRows(text, file) : readJsonlRows(text, file);
  const warnings: string[] = decoded.warning ? [decoded.warning] : [];
  if (unknown.length > 0) {
    warnings.push(
      `${file}: ignored unknown column(s) ${unknown.join(', ')} (known: ${KNOWN_COLUMNS.join(', ')})`,
    );
  }
  const base = dirname(file);
  const allowed = opts.labels ? new Set(opts.labels) : null;
  const ids = new Map<string, number>();
  const nextTurn = new Map<string, number>();
  const utterances: Utterance[] = [];
  for (const row of rows) {
    const where = `${file}:${row.line}`;
    const id = str(row, 'id', file);
    if (id === undefined) throw new Error(`${where}: missing "id"`);
    const prev = ids.get(id);
    if (prev !== undefined) throw new Error(`${where}: duplicate id "${id}" (first on line ${prev})`);
    ids.set(id, row.line);
    const label = str(row, 'label', file);
    if (label === undefined) throw new Error(`${where}: missing "label" for id "${id}"`);
    if (allowed && !allowed.has(label)) {
      throw new Error(`${where}: label "${label}" is not in the label set [${opts.labels!.join(', ')}]`);
    }
    const audio = str(row, 'audio', file);
    const text = str(row, 'text', file);
    if (audio === undefined && text === undefined)
      throw new Error(`${where}: id "${id}" has neither "audio" nor "text"`);
    const speaker = str(row, 'speaker', file) ?? 'unknown';
    const session = str(row, 'session', file) ?? str(row, 'fold', file) ?? speaker;
    const dialogue = str(row, 'dialogue', file) ?? id;
    let turn: number;
    const turnRaw = str(row, 'turn', file);
    if (turnRaw !== undefined) {
      turn = Number(turnRaw);
      if (!Number.isInteger(turn) || turn < 0)
        throw new Error(`${where}: "turn" must be a whole number >= 0, got "${turnRaw}"`);
    } else {
      turn = nextTurn.get(dialogue) ?? 0;
    }
    nextTurn.set(dialogue, Math.max(nextTurn.get(dialogue) ?? 0, turn + 1));
    utterances.push({
      id,
      audioPath: audio === undefined ? null : isAbsolute(audio) ? audio : resolve(base, audio),
      text: text ?? '',
      label,
      speaker,
      session,
      dialogue,
      turn,
    });
  }
  if (utterances.length === 0) throw new Error(`${file}: the manifest has no rows`);
  if (opts.checkAudio !== false) {
    // Stat in parallel batches: a large manifest should not take one round trip per file.
    const withAudio = utterances.filter((u) => u.audioPath !== null);
    for (let k = 0; k < withAudio.length; k += 256) {
      await Promise.all(
        withAudio.slice(k, k + 256).map(async (u) => {
          try {
            await stat(u.audioPath!);
          } catch {
            throw new Error(`${file}:${ids.get(u.id)}: audio file of "${u.id}" not found: ${u.audioPath}`);
          }
        }),
      );
    }
  }
  const labels = opts.labels ? [...opts.labels] : [...new Set(utterances.map((u) => u.label))].sort();
  return { name: basename(file, extname(file)), labels, utterances, warnings };
}
