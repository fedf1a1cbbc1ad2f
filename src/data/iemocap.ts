import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Corpus, Utterance } from './types.js';
import { decodeUtf8, type InvalidUtf8Policy } from './utf8.js';

/** The 4-class set of the paper, in this order; `exc` (excited) is merged into `hap`. */
export const IEMOCAP_LABELS_4 = ['ang', 'hap', 'sad', 'neu'];
/** Every category with a usable meaning; `xxx` (no agreement) and `oth` (other) never are. */
export const IEMOCAP_LABELS_ALL = ['ang', 'hap', 'sad', 'neu', 'fru', 'sur', 'fea', 'dis'];

const KNOWN_CODES = new Set([...IEMOCAP_LABELS_ALL, 'xxx', 'oth']);

/** Counts of the full release in the 4-class set (5531 utterances). */
export const IEMOCAP_KNOWN_COUNTS = {
  total: 5531,
  sessions: { Ses01: 1085, Ses02: 1023, Ses03: 1151, Ses04: 1031, Ses05: 1241 } as Record<string, number>,
  labels: { neu: 1708, hap: 1636, ang: 1103, sad: 1084 } as Record<string, number>,
};

export interface IemocapOptions {
  /** '4' (default): ang, hap (+exc), sad, neu. 'all': IEMOCAP_LABELS_ALL. */
  classes?: '4' | 'all';
  /** Which sessions to read (default 1..5). */
  sessions?: number[];
  /** A missing Session folder is an error unless this is set (then a warning). */
  allowMissingSessions?: boolean;
  /** A labelled turn with no transcript line: 'error' (default) or 'skip' with a counted warning. */
  onMissingTranscript?: 'error' | 'skip';
  /** A labelled turn whose wav is missing: 'error' (default) or 'skip' with a counted warning. */
  onMissingAudio?: 'error' | 'skip';
  /** Invalid UTF-8 in a transcript or label file: 'error' (default, naming file and line) or 'warn'. */
  invalidUtf8?: InvalidUtf8Policy;
}

// `[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]`; evaluator lines
// (`C-E2:\t...`, `A-F1:\t...`) and the `%` header do not match and are skipped.
const EVAL_LINE = /^\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s+(Ses\d\d[MF]_\S+)\s+([a-z]{3})\b/;
// `Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.` Also matches the unsegmented `MXX0`
// turns, which are real speech (history context) but never labelled. Lines such as `M: ...`
// or turn ids without times are not turns.
const TRANSCRIPT_LINE =
  /^(Ses\d\d[MF]_\S+_([MF])[0-9X]+\w*)\s+\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s*:\s?(.*)$/;

interface Turn {
  id: string;
  text: string;
  speaker: string;
  start: number;
  end: number;
}

/** `Ses01F_impro01_F000` -> `Ses01F_impro01` (the dialogue is the id minus its last segment). */
export function iemocapDialogueOf(turnId: string): string {
  return turnId.slice(0, turnId.lastIndexOf('_'));
}

/** `Ses01F_impro01_M003` -> `Ses01_M`: session plus the gender letter of the last segment. */
export function iemocapSpeakerOf(turnId: string): string {
  const last = turnId.slice(turnId.lastIndexOf('_') + 1);
  return `${turnId.slice(0, 5)}_${last[0]}`;
}

async function listTxt(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  // Skip sub-folders (Categorical/, Attribute/, ...) and macOS `._*` resource forks.
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.txt') && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads the IEMOCAP release (`IEMOCAP_full_release/`): labels from
 * `Session*\/dialog/EmoEvaluation/*.txt`, transcripts from `Session*\/dialog/transcriptions/*.txt`,
 * audio at `Session*\/sentences/wav/<dialogue>/<turn>.wav`. Utterances come ordered by session,
 * dialogue and start time; `dialogueTurns` holds every transcribed turn of each dialogue.
 */
export async function readIemocap(root: string, opts: IemocapOptions = {}): Promise<Corpus> {
  const dir = resolve(root);
  const classes = opts.classes ?? '4';
  const labelSet = classes === '4' ? IEMOCAP_LABELS_4 : IEMOCAP_LABELS_ALL;
  const sessions = opts.sessions ?? [1, 2, 3, 4, 5];
  const onMissingTranscript = opts.onMissingTranscript ?? 'error';
  const onMissingAudio = opts.onMissingAudio ?? 'error';
  const warnings: string[] = [];
  if (!(await exists(dir))) throw new Error(`IEMOCAP folder not found: ${dir}`);

  const utterances: Utterance[] = [];
  const dialogueTurns = new Map<string, { id: string; text: string; speaker: string }[]>();
  let unknownLabels = 0;
  const missingTranscripts: string[] = [];
  const missingAudio: string[] = [];
  const seenIds = new Map<string, string>();
  const readText = async (file: string): Promise<string> => {
    const d = decodeUtf8(await readFile(file), file, opts.invalidUtf8);
    if (d.warning) warnings.push(d.warning);
    return d.text;
  };

  for (const s of sessions) {
    const sessionDir = join(dir, `Session${s}`);
    if (!(await exists(sessionDir))) {
      if (!opts.allowMissingSessions) {
        throw new Error(
          `IEMOCAP session folder missing: ${sessionDir} (set allowMissingSessions to read the others)`,
        );
      }
      warnings.push(`IEMOCAP session folder missing, skipped: ${sessionDir}`);
      continue;
    }
    const evalDir = join(sessionDir, 'dialog', 'EmoEvaluation');
    const transDir = join(sessionDir, 'dialog', 'transcriptions');
    for (const d of [evalDir, transDir]) {
      if (!(await exists(d))) throw new Error(`IEMOCAP folder missing: ${d}`);
    }

    // Transcripts first: every turn of every dialogue, labelled or not.
    const turns = new Map<string, Turn>();
    const byDialogue = new Map<string, Turn[]>();
    for (const name of await listTxt(transDir)) {
      const text = await readText(join(transDir, name));
      for (const raw of text.split(/\r?\n/)) {
        const m = TRANSCRIPT_LINE.exec(raw.trim());
        if (!m) continue;
        const t: Turn = {
          id: m[1],
          speaker: iemocapSpeakerOf(m[1]),
          start: Number(m[3]),
          end: Number(m[4]),
          text: m[5].trim(),
        };
        if (turns.has(t.id)) continue; // a repeated line adds nothing
        turns.set(t.id, t);
        const dlg = iemocapDialogueOf(t.id);
        let list = byDialogue.get(dlg);
        if (!list) byDialogue.set(dlg, (list = []));
        list.push(t);
      }
    }
    const position = new Map<string, number>();
    for (const [dlg, list] of [...byDialogue].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      list.sort((a, b) => a.start - b.start || a.end - b.end || (a.id < b.id ? -1 : 1));
      list.forEach((t, k) => position.set(t.id, k));
      dialogueTurns.set(
        dlg,
        list.map((t) => ({ id: t.id, text: t.text, speaker: t.speaker })),
      );
    }

    // Labels.
    const sessionUtts: Utterance[] = [];
    for (const name of await listTxt(evalDir)) {
      const file = join(evalDir, name);
      const text = await readText(file);
      const lines = text.split(/\r?\n/);
      for (let k = 0; k < lines.length; k++) {
        const m = EVAL_LINE.exec(lines[k].trim());
        if (!m) continue;
        const [, start, end, id, raw] = m;
        const first = seenIds.get(id);
        if (first) throw new Error(`${file}:${k + 1}: turn ${id} is labelled twice (also in ${first})`);
        seenIds.set(id, `${file}:${k + 1}`);
        const label = raw === 'exc' ? 'hap' : raw;
        if (!labelSet.includes(label)) {
          // xxx, oth (and fru, sur, fea, dis in the 4-class set) are left out by the protocol.
          if (!KNOWN_CODES.has(label)) unknownLabels++;
          continue;
        }
        const turn = turns.get(id);
        if (!turn) {
          if (onMissingTranscript === 'error') {
            throw new Error(`${file}:${k + 1}: labelled turn ${id} has no line in ${transDir}`);
          }
          missingTranscripts.push(id);
          continue;
        }
        const dialogue = iemocapDialogueOf(id);
        const audioPath = join(sessionDir, 'sentences', 'wav', dialogue, `${id}.wav`);
        sessionUtts.push({
          id,
          audioPath,
          text: turn.text,
          label,
          speaker: iemocapSpeakerOf(id),
          session: id.slice(0, 5),
          dialogue,
          turn: position.get(id)!,
          start: Number(start),
          end: Number(end),
        });
      }
    }
    // Stat the wavs in parallel: thousands of sequential round trips are slow on network disks.
    const present = await Promise.all(sessionUtts.map((u) => exists(u.audioPath!)));
    sessionUtts.forEach((u, k) => {
      if (present[k]) utterances.push(u);
      else if (onMissingAudio === 'error')
        throw new Error(`IEMOCAP wav missing for turn ${u.id}: ${u.audioPath}`);
      else missingAudio.push(u.audioPath!);
    });
  }

  if (missingTranscripts.length > 0) {
    warnings.push(
      `${missingTranscripts.length} labelled turn(s) with no transcript skipped (first: ${missingTranscripts.slice(0, 3).join(', ')})`,
    );
  }
  if (missingAudio.length > 0) {
    warnings.push(
      `${missingAudio.length} labelled turn(s) with a missing wav skipped (first: ${missingAudio.slice(0, 3).join(', ')})`,
    );
  }
  if (unknownLabels > 0) warnings.push(`${unknownLabels} turn(s) with an unknown emotion code skipped`);
  utterances.sort(
    (a, b) =>
      (a.session < b.session ? -1 : a.session > b.session ? 1 : 0) ||
      (a.dialogue < b.dialogue ? -1 : a.dialogue > b.dialogue ? 1 : 0) ||
      a.turn - b.turn,
  );
  if (classes === '4') warnings.push(...checkIemocapCounts(utterances));
  return { name: 'iemocap', labels: [...labelSet], utterances, warnings, dialogueTurns };
}

/**
 * Compares 4-class counts with the full release's table. Returns one warning naming every
 * count that differs, or none. Differences are legitimate for subsets, so never an error.
 */
export function checkIemocapCounts(utts: Utterance[]): string[] {
  const diffs: string[] = [];
  if (utts.length !== IEMOCAP_KNOWN_COUNTS.total)
    diffs.push(`total ${utts.length} (expected ${IEMOCAP_KNOWN_COUNTS.total})`);
  const count = (key: 'session' | 'label') => {
    const m = new Map<string, number>();
    for (const u of utts) m.set(u[key], (m.get(u[key]) ?? 0) + 1);
    return m;
  };
  const bySession = count('session');
  for (const [s, n] of Object.entries(IEMOCAP_KNOWN_COUNTS.sessions)) {
    const got = bySession.get(s) ?? 0;
    if (got !== n) diffs.push(`${s} ${got} (expected ${n})`);
  }
  const byLabel = count('label');
  for (const [l, n] of Object.entries(IEMOCAP_KNOWN_COUNTS.labels)) {
    const got = byLabel.get(l) ?? 0;
    if (got !== n) diffs.push(`${l} ${got} (expected ${n})`);
  }
  if (diffs.length === 0) return [];
  return [
    `IEMOCAP counts differ from the full release (fine for a subset; otherwise check the files): ${diffs.join(', ')}`,
  ];
}
