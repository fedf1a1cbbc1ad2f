/**
 * The Hugging Face `tokenizer.json` object of a BERT-style WordPiece tokenizer, built
 * from a plain vocabulary. Shared by the from-scratch vocabulary builder (vocab.ts) and
 * by loading a classic BERT folder that only has `vocab.txt` (tokenizer.ts), so that
 * both produce exactly what `BertTokenizerFast` would write.
 */

export const PAD = '[PAD]';
export const UNK = '[UNK]';
export const CLS = '[CLS]';
export const SEP = '[SEP]';
export const MASK = '[MASK]';
export const SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK] as const;
export const SUBWORD_PREFIX = '##';
/** Words longer than this (in code points) become [UNK], as in BERT. */
export const MAX_INPUT_CHARS_PER_WORD = 100;

export interface BertJsonOptions {
  /** Lowercase (and then strip accents, as BERT-uncased does). Default true. */
  lowercase?: boolean;
  /** Strip accents; null = follow `lowercase` (the BertNormalizer default). */
  stripAccents?: boolean | null;
  /** Put spaces around CJK characters. Default true. */
  handleChineseChars?: boolean;
}

/** The normalizer config every BERT tokenizer.json here uses. */
export function bertNormalizerConfig(opts: BertJsonOptions = {}): {
  type: 'BertNormalizer';
  clean_text: boolean;
  handle_chinese_chars: boolean;
  strip_accents: boolean | null;
  lowercase: boolean;
} {
  return {
    type: 'BertNormalizer',
    clean_text: true,
    handle_chinese_chars: opts.handleChineseChars ?? true,
    strip_accents: opts.stripAccents ?? null,
    lowercase: opts.lowercase ?? true,
  };
}

/**
 * Builds the tokenizer.json object. `vocab` maps token -> id; it must hold [PAD], [UNK],
 * [CLS] and [SEP] ([MASK] is optional). `source` names where the vocabulary came from,
 * for error messages.
 */
export function bertTokenizerJson(
  vocab: Record<string, number>,
  opts: BertJsonOptions = {},
  source = 'vocabulary',
): Record<string, unknown> {
  for (const t of [PAD, UNK, CLS, SEP]) {
    if (!Object.hasOwn(vocab, t)) throw new Error(`${source}: the special token ${t} is missing`);
  }
  const addedTokens = SPECIAL_TOKENS.filter((t) => Object.hasOwn(vocab, t)).map((t) => ({
    id: vocab[t],
    content: t,
    single_word: false,
    lstrip: false,
    rstrip: false,
    // Specials are matched before normalisation, so lowercasing never turns "[CLS]" into a word.
    normalized: false,
    special: true,
  }));
  const cls = vocab[CLS];
  const sep = vocab[SEP];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: bertNormalizerConfig(opts),
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: CLS, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: SEP, type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: CLS, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: SEP, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: SEP, type_id: 1 } },
      ],
      special_tokens: {
        [CLS]: { id: CLS, ids: [cls], tokens: [CLS] },
        [SEP]: { id: SEP, ids: [sep], tokens: [SEP] },
      },
    },
    decoder: { type: 'WordPiece', prefix: SUBWORD_PREFIX, cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: UNK,
      continuing_subword_prefix: SUBWORD_PREFIX,
      max_input_chars_per_word: MAX_INPUT_CHARS_PER_WORD,
      vocab,
    },
  };
}
