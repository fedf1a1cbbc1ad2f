/**
 * Text tokenisation for the text branch: a Hugging Face `tokenizer.json` (or a classic
 * BERT folder with only `vocab.txt`) run by @huggingface/tokenizers, plus what that
 * library leaves out: dialogue-history layout, truncation and padding.
 *
 * Layout of one input (BERT): `[CLS] history... [SEP] current [SEP]`, type id 0 for the
 * history segment and 1 for the current utterance; without history `[CLS] current [SEP]`,
 * all type 0. The layout is read from the tokenizer's own post-processor, so any
 * TemplateProcessing / BertProcessing tokenizer works the same way.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { decodeUtf8 } from '../data/utf8.js';
import { bertTokenizerJson, CLS, PAD, SEP, UNK } from './bert-json.js';

export interface EncodeOptions {
  /** Previous utterances of the dialogue, oldest first. Empty strings are skipped. */
  history?: string[];
  /** Total length including special tokens. Default 150 (the paper's setting). */
  maxLength?: number;
}

export interface Encoded {
  ids: number[];
  typeIds: number[];
  /** The current utterance's tokens are ids[currentStart .. currentEnd) (end exclusive). */
  currentStart: number;
  currentEnd: number;
}

export interface TextTokenizer {
  /** Size of the embedding table the ids index: max id + 1. */
  readonly vocabSize: number;
  readonly padId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  /** The file the tokenizer was read from (or built from). */
  readonly source: string;
  /** Word pieces of `text`, no special tokens. */
  tokenize(text: string): string[];
  /** Number of word pieces of `text`, no special tokens. */
  countTokens(text: string): number;
  /** Ids of the word pieces of `text`, no special tokens. */
  encodeText(text: string): number[];
  encode(current: string, opts?: EncodeOptions): Encoded;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

export const DEFAULT_MAX_LENGTH = 150;

/** One element of a post-processor template: special token ids, or a text segment. */
type TemplateItem = { special: number[]; typeId: number } | { segment: 'A' | 'B'; typeId: number };

interface Layout {
  single: TemplateItem[];
  pair: TemplateItem[];
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Loads a tokenizer from a `tokenizer.json` file, a folder holding one, a folder holding
 * only a BERT `vocab.txt` (the BERT-uncased tokenizer.json is then built in memory), or a
 * `vocab.txt` file. A `tokenizer_config.json` beside it is read when present.
 */
export async function loadTokenizer(pathOrDir: string): Promise<TextTokenizer> {
  const info = await stat(pathOrDir).catch(() => null);
  if (!info) throw new Error(`loadTokenizer: ${pathOrDir} does not exist`);
  let file = pathOrDir;
  if (info.isDirectory()) {
    const json = join(pathOrDir, 'tokenizer.json');
    const txt = join(pathOrDir, 'vocab.txt');
    if (await isFile(json)) file = json;
    else if (await isFile(txt)) file = txt;
    else throw new Error(`loadTokenizer: ${pathOrDir} holds neither tokenizer.json nor vocab.txt`);
  }
  const dir = dirname(file);
  const config = await readTokenizerConfig(join(dir, 'tokenizer_config.json'));
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new Error(`loadTokenizer: cannot read ${file}: ${(err as Error).message}`);
  }
  // A vocabulary with invalid UTF-8 would hold U+FFFD tokens that match nothing: refuse it.
  const text = decodeUtf8(bytes, file).text;
  let json: Json;
  if (basename(file).endsWith('.txt')) {
    json = tokenizerJsonFromVocabTxt(text, config, file);
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
    }
    if (!isObject(parsed) || !isObject(parsed.model)) {
      throw new Error(`${file}: not a tokenizer.json (no "model" object)`);
    }
    json = parsed;
  }
  return tokenizerFromJson(json, config, file);
}

/** Builds a tokenizer from an in-memory tokenizer.json object (e.g. from buildWordPieceVocab). */
export function tokenizerFromJson(json: Json, config: Json = {}, source = 'tokenizer.json'): TextTokenizer {
  // The library requires these keys to exist (null is fine).
  const full: Json = {
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    ...json,
  };
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(full, config);
    // Fail here, not on the first real sentence, if the pipeline cannot run.
    tok.encode('a', { add_special_tokens: false });
  } catch (err) {
    throw new Error(`${source}: not a usable tokenizer (${(err as Error).message})`);
  }
  return new HfTextTokenizer(tok, full, config, source);
}

async function isFile(p: string): Promise<boolean> {
  const s = await stat(p).catch(() => null);
  return s !== null && s.isFile();
}

async function readTokenizerConfig(path: string): Promise<Json> {
  if (!(await isFile(path))) return {};
  const text = decodeUtf8(await readFile(path), path).text;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(parsed)) throw new Error(`${path}: expected a JSON object`);
  return parsed;
}

/** vocab.txt: one token per line, the line number is the id (as BertTokenizer reads it). */
function tokenizerJsonFromVocabTxt(text: string, config: Json, file: string): Json {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new Error(`${file}: empty vocabulary`);
  const vocab: Record<string, number> = {};
  lines.forEach((token, id) => {
    if (token === '') throw new Error(`${file}: empty token on line ${id + 1}`);
    vocab[token] = id; // a repeated token keeps its last id, as BertTokenizer's load_vocab does
  });
  const lowercase = typeof config.do_lower_case === 'boolean' ? config.do_lower_case : true;
  const stripAccents = typeof config.strip_accents === 'boolean' ? config.strip_accents : null;
  const handleChineseChars =
    typeof config.tokenize_chinese_chars === 'boolean' ? config.tokenize_chinese_chars : true;
  return bertTokenizerJson(vocab, { lowercase, stripAccents, handleChineseChars }, file);
}

class HfTextTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  private readonly layout: Layout;
  private readonly singleOverhead: number;
  private readonly pairOverhead: number;

  constructor(
    private readonly tok: Tokenizer,
    json: Json,
    config: Json,
    readonly source: string,
  ) {
    const vocab = tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const id = (t: string | undefined): number | undefined => (t === undefined ? undefined : vocab.get(t));
    const tokenName = (x: unknown): string | undefined =>
      typeof x === 'string' ? x : isObject(x) && typeof x.content === 'string' ? x.content : undefined;

    this.layout = parseLayout(json.post_processor, vocab, source);
    this.singleOverhead = overhead(this.layout.single);
    this.pairOverhead = overhead(this.layout.pair);
    const specials = this.layout.single.flatMap((it) => ('special' in it ? it.special : []));
    if (specials.length < 2) throw new Error(`${source}: the post-processor adds no [CLS] ... [SEP] pair`);
    this.clsId = specials[0];
    this.sepId = specials[specials.length - 1];

    const model = json.model as Json;
    const unk = id(tokenName(model.unk_token)) ?? id(tokenName(config.unk_token)) ?? id(UNK) ?? id('<unk>');
    if (unk === undefined) throw new Error(`${source}: no unknown token ([UNK] or <unk>) in the vocabulary`);
    this.unkId = unk;

    const padding = json.padding;
    const pad =
      (isObject(padding) && typeof padding.pad_id === 'number' ? padding.pad_id : undefined) ??
      id(tokenName(config.pad_token)) ??
      id(PAD) ??
      id('<pad>');
    if (pad === undefined) throw new Error(`${source}: no padding token ([PAD] or <pad>) in the vocabulary`);
    this.padId = pad;
  }

  tokenize(text: string): string[] {
    return this.tok.tokenize(text);
  }

  countTokens(text: string): number {
    return this.tok.tokenize(text).length;
  }

  encodeText(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  encode(current: string, opts: EncodeOptions = {}): Encoded {
    const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
    if (!Number.isInteger(maxLength) || maxLength <= this.singleOverhead) {
      throw new Error(
        `encode: maxLength must be an integer above ${this.singleOverhead} (the special tokens), got ${maxLength}`,
      );
    }
    const cur = this.encodeText(current);
    const turns = (opts.history ?? []).map((t) => this.encodeText(t)).filter((ids) => ids.length > 0);
    const budget = maxLength - this.pairOverhead - cur.length;
    if (turns.length > 0 && budget > 0) {
      // Oldest whole turns go first; the most recent turn is never dropped whole, only
      // cut from its front, so that some history survives whenever any room is left.
      let total = turns.reduce((s, t) => s + t.length, 0);
      let first = 0;
      while (total > budget && first < turns.length - 1) total -= turns[first++].length;
      let hist = turns.slice(first).flat();
      if (hist.length > budget) hist = hist.slice(hist.length - budget);
      return assemble(this.layout.pair, hist, cur, 'B');
    }
    // No history (or no room for any): only now is the current utterance's tail cut.
    return assemble(this.layout.single, cur.slice(0, maxLength - this.singleOverhead), [], 'A');
  }
}

function overhead(items: TemplateItem[]): number {
  return items.reduce((s, it) => s + ('special' in it ? it.special.length : 0), 0);
}

/** Lays out segments A and B by the template; `currentSeg` names the current utterance's segment. */
function assemble(items: TemplateItem[], a: number[], b: number[], currentSeg: 'A' | 'B'): Encoded {
  const ids: number[] = [];
  const typeIds: number[] = [];
  let currentStart = 0;
  let currentEnd = 0;
  for (const it of items) {
    if ('special' in it) {
      for (const id of it.special) {
        ids.push(id);
        typeIds.push(it.typeId);
      }
    } else {
      const seg = it.segment === 'A' ? a : b;
      if (it.segment === currentSeg) currentStart = ids.length;
      for (const id of seg) {
        ids.push(id);
        typeIds.push(it.typeId);
      }
      if (it.segment === currentSeg) currentEnd = ids.length;
    }
  }
  return { ids, typeIds, currentStart, currentEnd };
}

/** Reads the single / pair templates from the tokenizer.json post-processor. */
function parseLayout(pp: unknown, vocab: Map<string, number>, source: string): Layout {
  const need = (t: string): number => {
    const id = vocab.get(t);
    if (id === undefined) throw new Error(`${source}: post-processor token ${t} is not in the vocabulary`);
    return id;
  };
  const bert = (cls: number, sep: number): Layout => ({
    single: [
      { special: [cls], typeId: 0 },
      { segment: 'A', typeId: 0 },
      { special: [sep], typeId: 0 },
    ],
    pair: [
      { special: [cls], typeId: 0 },
      { segment: 'A', typeId: 0 },
      { special: [sep], typeId: 0 },
      { segment: 'B', typeId: 1 },
      { special: [sep], typeId: 1 },
    ],
  });
  if (pp === null || pp === undefined) return bert(need(CLS), need(SEP));
  if (!isObject(pp)) throw new Error(`${source}: post_processor is not an object`);
  if (pp.type === 'Sequence' && Array.isArray(pp.processors)) {
    const inner = pp.processors.find(
      (p) =>
        isObject(p) &&
        (p.type === 'TemplateProcessing' || p.type === 'BertProcessing' || p.type === 'RobertaProcessing'),
    );
    return parseLayout(inner ?? null, vocab, source);
  }
  if (pp.type === 'BertProcessing') {
    const pairId = (x: unknown): number => {
      if (Array.isArray(x) && typeof x[1] === 'number') return x[1];
      throw new Error(`${source}: BertProcessing cls/sep must be [token, id] pairs`);
    };
    return bert(pairId(pp.cls), pairId(pp.sep));
  }
  if (pp.type === 'RobertaProcessing') {
    // RoBERTa: <s> A </s> and <s> A </s> </s> B </s>, every type id 0.
    const pairId = (x: unknown): number => {
      if (Array.isArray(x) && typeof x[1] === 'number') return x[1];
      throw new Error(`${source}: RobertaProcessing cls/sep must be [token, id] pairs`);
    };
    const cls = pairId(pp.cls);
    const sep = pairId(pp.sep);
    return {
      single: [
        { special: [cls], typeId: 0 },
        { segment: 'A', typeId: 0 },
        { special: [sep], typeId: 0 },
      ],
      pair: [
        { special: [cls], typeId: 0 },
        { segment: 'A', typeId: 0 },
        { special: [sep, sep], typeId: 0 },
        { segment: 'B', typeId: 0 },
        { special: [sep], typeId: 0 },
      ],
    };
  }
  if (pp.type === 'TemplateProcessing') {
    const specials = isObject(pp.special_tokens) ? pp.special_tokens : {};
    const items = (tpl: unknown, name: string): TemplateItem[] => {
      if (!Array.isArray(tpl)) throw new Error(`${source}: TemplateProcessing.${name} is not a list`);
      return tpl.map((it): TemplateItem => {
        if (isObject(it) && isObject(it.SpecialToken)) {
          const st = it.SpecialToken;
          const key = String(st.id);
          const entry = specials[key];
          const ids =
            isObject(entry) && Array.isArray(entry.ids) ? entry.ids.map((x) => Number(x)) : [need(key)];
          return { special: ids, typeId: Number(st.type_id ?? 0) };
        }
        if (isObject(it) && isObject(it.Sequence) && (it.Sequence.id === 'A' || it.Sequence.id === 'B')) {
          return { segment: it.Sequence.id, typeId: Number(it.Sequence.type_id ?? 0) };
        }
        throw new Error(`${source}: unreadable TemplateProcessing.${name} item ${JSON.stringify(it)}`);
      });
    };
    return { single: items(pp.single, 'single'), pair: items(pp.pair, 'pair') };
  }
  throw new Error(
    `${source}: post_processor type ${String(pp.type)} is not supported (need a BERT-style layout)`,
  );
}

export interface PaddedBatch {
  /** Token ids, int64 for ONNX, row-major [batch, maxLen]. */
  ids: BigInt64Array;
  typeIds: BigInt64Array;
  /** 1 on real tokens, 0 on padding. */
  mask: Float32Array;
  /** 1 on the current utterance's tokens only (for attending labels over it alone). */
  currentMask: Float32Array;
  /** Unpadded length of each row. */
  lengths: Int32Array;
  shape: [number, number];
}

/**
 * Pads encodings to one [batch, maxLen] block (or to `padTo` when given, for fixed
 * shapes), padding on the right with `padId`, type id 0 and mask 0.
 */
export function padBatch(encodings: Encoded[], padId: number, opts: { padTo?: number } = {}): PaddedBatch {
  if (encodings.length === 0) throw new Error('padBatch: empty batch');
  const longest = Math.max(...encodings.map((e) => e.ids.length));
  const len = opts.padTo ?? longest;
  if (len < longest) throw new Error(`padBatch: padTo ${len} is shorter than the longest row (${longest})`);
  const n = encodings.length;
  const ids = new BigInt64Array(n * len).fill(BigInt(padId));
  const typeIds = new BigInt64Array(n * len);
  const mask = new Float32Array(n * len);
  const currentMask = new Float32Array(n * len);
  const lengths = new Int32Array(n);
  encodings.forEach((e, r) => {
    if (e.typeIds.length !== e.ids.length)
      throw new Error(`padBatch: row ${r} has ids and typeIds of different lengths`);
    const off = r * len;
    for (let i = 0; i < e.ids.length; i++) {
      ids[off + i] = BigInt(e.ids[i]);
      typeIds[off + i] = BigInt(e.typeIds[i]);
      mask[off + i] = 1;
    }
    for (let i = e.currentStart; i < e.currentEnd; i++) currentMask[off + i] = 1;
    lengths[r] = e.ids.length;
  });
  return { ids, typeIds, mask, currentMask, lengths, shape: [n, len] };
}
