import type { Corpus, Utterance } from './types.js';

export interface HistoryOptions {
  /** At most this many previous turns (default 10, the paper's). */
  maxTurns?: number;
  /** History plus the current utterance must fit in this many tokens (default 150). */
  maxTokens?: number;
  /**
   * Tokens one text takes. Include any per-turn separator the model adds (e.g. [SEP]) so the
   * budget holds after joining.
   */
  countTokens: (s: string) => number;
}

/**
 * Chooses the dialogue history to show with `current`: the `maxTurns` most recent previous
 * turns, then the oldest dropped first until history + current fit in `maxTokens`. The current
 * utterance is never dropped: if it alone exceeds the budget the history is empty (and the
 * tokenizer truncates the utterance itself). Returns the kept turns, oldest first.
 */
export function selectHistory(history: string[], current: string, opts: HistoryOptions): string[] {
  const maxTurns = opts.maxTurns ?? 10;
  const maxTokens = opts.maxTokens ?? 150;
  if (maxTurns <= 0) return [];
  const recent = history.slice(Math.max(0, history.length - maxTurns));
  const cost = recent.map((h) => opts.countTokens(h));
  let total = opts.countTokens(current) + cost.reduce((a, b) => a + b, 0);
  let first = 0;
  while (first < recent.length && total > maxTokens) total -= cost[first++];
  return recent.slice(first);
}

// Per-corpus indexes, built once: looking history up must not rescan the corpus per utterance.
interface ContextIndex {
  // What the index was built from: rebuilt if the corpus' arrays are replaced or grow.
  utterances: Utterance[];
  count: number;
  dialogueTurns: Corpus['dialogueTurns'];
  turnPos: Map<string, { dialogue: string; pos: number }>;
  byDialogue: Map<string, Utterance[]>;
}
const indexes = new WeakMap<Corpus, ContextIndex>();

function indexOf(corpus: Corpus): ContextIndex {
  let idx = indexes.get(corpus);
  if (
    idx &&
    idx.utterances === corpus.utterances &&
    idx.count === corpus.utterances.length &&
    idx.dialogueTurns === corpus.dialogueTurns
  ) {
    return idx;
  }
  const turnPos = new Map<string, { dialogue: string; pos: number }>();
  for (const [dialogue, turns] of corpus.dialogueTurns ?? [])
    turns.forEach((t, pos) => turnPos.set(t.id, { dialogue, pos }));
  const byDialogue = new Map<string, Utterance[]>();
  for (const u of corpus.utterances) {
    let list = byDialogue.get(u.dialogue);
    if (!list) byDialogue.set(u.dialogue, (list = []));
    list.push(u);
  }
  for (const list of byDialogue.values()) list.sort((a, b) => a.turn - b.turn);
  idx = {
    utterances: corpus.utterances,
    count: corpus.utterances.length,
    dialogueTurns: corpus.dialogueTurns,
    turnPos,
    byDialogue,
  };
  indexes.set(corpus, idx);
  return idx;
}

/**
 * The texts of the turns before `utt` in its dialogue, oldest first: from `corpus.dialogueTurns`
 * where it holds the utterance (every transcribed turn, labelled or not), else the corpus'
 * utterances of the same dialogue with a smaller `turn`. Empty texts are left out (they add
 * nothing but separators). Then `selectHistory` applies the turn and token limits.
 */
export function historyFor(corpus: Corpus, utt: Utterance, opts: HistoryOptions): string[] {
  const idx = indexOf(corpus);
  let texts: string[];
  const at = idx.turnPos.get(utt.id);
  const turns = at && at.dialogue === utt.dialogue ? corpus.dialogueTurns?.get(at.dialogue) : undefined;
  if (at && turns) {
    texts = turns.slice(0, at.pos).map((t) => t.text);
  } else {
    texts = (idx.byDialogue.get(utt.dialogue) ?? []).filter((u) => u.turn < utt.turn).map((u) => u.text);
  }
  return selectHistory(
    texts.filter((t) => t.trim() !== ''),
    utt.text,
    opts,
  );
}
