/** One labelled utterance, the record every corpus reader yields. */
export interface Utterance {
  /** Unique within the corpus (IEMOCAP: the turn id, e.g. Ses01F_impro01_F000). */
  id: string;
  /** Absolute path of the audio file, or null for text-only corpora (MELD). */
  audioPath: string | null;
  /** The transcript of this utterance ('' only where the corpus truly has none). */
  text: string;
  /** Class name from the corpus' label set (e.g. 'ang' | 'hap' | 'sad' | 'neu'). */
  label: string;
  speaker: string;
  /** The key that leave-one-group-out folds split on (IEMOCAP: 'Ses01'; EmoDB: the speaker). */
  session: string;
  /** Dialogue id, for dialogue-history context; utterances of one dialogue share it. */
  dialogue: string;
  /** Position of the utterance within its dialogue (0-based, ordered by start time). */
  turn: number;
  /** Start / end in seconds within the dialogue recording, where the corpus says. */
  start?: number;
  end?: number;
}

/** A corpus after reading: its utterances and the label set they use, in a fixed order. */
export interface Corpus {
  name: string;
  labels: string[];
  utterances: Utterance[];
  /** Things a user should know (files skipped, counts that differ from the known table). */
  warnings: string[];
  /**
   * Every transcribed turn of each dialogue in order, labelled or not, where the corpus
   * has them (IEMOCAP): the source of dialogue-history context. Without it, history comes
   * from the corpus' own utterances of the same dialogue, ordered by turn.
   */
  dialogueTurns?: Map<string, { id: string; text: string; speaker: string }[]>;
  /** Set when a label map was applied: the map, and the utterances left out per original label. */
  labelMap?: { map: Record<string, string>; dropped: Record<string, number> };
}
