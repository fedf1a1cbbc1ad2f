/**
 * Strict UTF-8 decoding for the corpus readers: invalid bytes never turn silently into
 * U+FFFD. By default they are an error naming the file, line and byte; with the 'warn'
 * policy they are read as U+FFFD and counted in one warning.
 */

/** What a reader does with invalid UTF-8: 'error' (default) or 'warn' (U+FFFD, counted). */
export type InvalidUtf8Policy = 'error' | 'warn';

export const INVALID_UTF8_POLICIES: readonly InvalidUtf8Policy[] = ['error', 'warn'];

const strict = new TextDecoder('utf-8', { fatal: true });
const lenient = new TextDecoder('utf-8');

/** Offset of the first byte in [from, to) that does not start or continue a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(b: Uint8Array, from = 0, to = b.length): number {
  let i = from;
  while (i < to) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0; // no overlong forms
      if (c === 0xed) hi = 0x9f; // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    for (let k = 1; k <= need; k++) {
      const d = i + k < to ? b[i + k]! : -1;
      if (d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** The 1-based lines (split at LF bytes) that hold invalid UTF-8, with the first bad byte's column. */
export function invalidUtf8Lines(b: Uint8Array): { line: number; column: number; byte: number }[] {
  const out: { line: number; column: number; byte: number }[] = [];
  let start = 0;
  let line = 1;
  while (start <= b.length) {
    let end = b.indexOf(0x0a, start);
    if (end < 0) end = b.length;
    const bad = firstInvalidUtf8(b, start, end);
    if (bad >= 0) out.push({ line, column: bad - start + 1, byte: b[bad]! });
    start = end + 1;
    line++;
  }
  return out;
}

export interface DecodedText {
  text: string;
  /** Set when the 'warn' policy read invalid bytes as U+FFFD. */
  warning?: string;
}

const hex = (v: number) => `0x${v.toString(16).padStart(2, '0')}`;

/**
 * Decodes a text file's bytes as UTF-8 (a byte-order mark is dropped). Invalid UTF-8 is an
 * error naming `file`, the line and the byte, unless `policy` is 'warn': then the text is read
 * with U+FFFD in place of the bad bytes and `warning` says how many lines were affected.
 */
export function decodeUtf8(
  bytes: Uint8Array,
  file: string,
  policy: InvalidUtf8Policy = 'error',
): DecodedText {
  let text: string;
  try {
    text = strict.decode(bytes);
  } catch {
    const bad = invalidUtf8Lines(bytes);
    const first = bad[0] ?? { line: 1, column: 1, byte: 0 };
    const lines = bad.length === 1 ? 'line' : 'lines';
    if (policy === 'error') {
      throw new Error(
        `${file}:${first.line}: invalid UTF-8 (byte ${hex(first.byte)} at column ${first.column}` +
          `${bad.length > 1 ? `; ${bad.length} ${lines} in all` : ''}): save the file as UTF-8, ` +
          `or read it with U+FFFD for the bad bytes (--invalid-utf8 warn, config invalidUtf8: warn)`,
      );
    }
    text = lenient.decode(bytes);
    const shown = bad.slice(0, 5).map((b) => b.line);
    return {
      text: text.charCodeAt(0) === 0xfeff ? text.slice(1) : text,
      warning:
        `${file}: ${bad.length} ${lines} with invalid UTF-8 read with U+FFFD for the bad bytes ` +
        `(line${bad.length === 1 ? '' : 's'} ${shown.join(', ')}${bad.length > shown.length ? ', ...' : ''})`,
    };
  }
  return { text: text.charCodeAt(0) === 0xfeff ? text.slice(1) : text };
}
