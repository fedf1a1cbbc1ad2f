import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { configSchema, type LemerConfig } from './schema.js';

/** A config that failed to read or validate; `issues` holds one line per problem. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(issues.map((i) => `${source}: ${i}`).join('\n'));
    this.name = 'ConfigError';
  }
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Merges `over` into `base`: objects key by key, everything else (arrays included) replaced. */
export function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlain(v) && isPlain(out[k]) ? deepMerge(out[k] as Plain, v) : v;
  }
  return out;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return JSON.stringify(v);
}

function formatPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s || '(top level)';
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

/** The keys an object schema allows at `path`, looking through defaults and nullables. */
function keysAt(path: readonly PropertyKey[]): string[] {
  let s: z.ZodType = configSchema;
  const unwrap = (t: z.ZodType): z.ZodType => {
    for (;;) {
      if (
        t instanceof z.ZodDefault ||
        t instanceof z.ZodPrefault ||
        t instanceof z.ZodNullable ||
        t instanceof z.ZodOptional
      )
        t = t.unwrap() as z.ZodType;
      else return t;
    }
  };
  for (const p of path) {
    s = unwrap(s);
    if (!(s instanceof z.ZodObject)) return [];
    const next = (s.shape as Record<string, z.ZodType>)[String(p)];
    if (!next) return [];
    s = next;
  }
  s = unwrap(s);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

function suggest(key: string, allowed: string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = editDistance(key.toLowerCase(), a.toLowerCase());
    if (d < bestD) [best, bestD] = [a, d];
  }
  const ok = best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3));
  return ok ? ` (did you mean "${best}"?)` : allowed.length ? ` (known keys: ${allowed.join(', ')})` : '';
}

/** One readable line per zod issue: `optim.lr.text: expected number, got "fast"`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const where = formatPath(issue.path);
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'invalid_type': {
        const expected = issue.expected === 'int' ? 'an integer' : issue.expected;
        lines.push(`${where}: expected ${expected}, got ${describe(input)}`);
        break;
      }
      case 'invalid_value':
        lines.push(
          `${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(input)}`,
        );
        break;
      case 'unrecognized_keys': {
        const allowed = keysAt(issue.path);
        for (const k of issue.keys)
          lines.push(`${formatPath([...issue.path, k])}: unknown key${suggest(k, allowed)}`);
        break;
      }
      case 'too_small': {
        const bound = `${issue.inclusive ? 'at least' : 'more than'} ${String(issue.minimum)}`;
        lines.push(
          issue.origin === 'array'
            ? `${where}: needs ${bound} items`
            : issue.origin === 'string'
              ? `${where}: must be ${bound} characters long`
              : `${where}: must be ${bound}, got ${describe(input)}`,
        );
        break;
      }
      case 'too_big': {
        const bound = `${issue.inclusive ? 'at most' : 'less than'} ${String(issue.maximum)}`;
        lines.push(`${where}: must be ${bound}, got ${describe(input)}`);
        break;
      }
      default:
        lines.push(`${where}: ${issue.message}`);
    }
  }
  return lines;
}

/** Validates a plain object as a config (defaults filled); `source` names it in errors. */
export function parseConfig(raw: unknown, source = 'config'): LemerConfig {
  if (raw === null || raw === undefined) raw = {};
  if (!isPlain(raw))
    throw new ConfigError(source, [`expected a mapping of settings at the top level, got ${describe(raw)}`]);
  const r = configSchema.safeParse(raw, { reportInput: true });
  if (!r.success) throw new ConfigError(source, formatIssues(r.error.issues));
  return r.data;
}

/** Reads a YAML or JSON file (YAML is a superset of JSON; `.json` files are parsed strictly as JSON). */
export function readConfigFile(path: string): Plain {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [
      code === 'ENOENT' ? 'no such file' : `cannot read: ${(err as Error).message}`,
    ]);
  }
  let raw: unknown;
  try {
    raw = path.toLowerCase().endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      const at = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      throw new ConfigError(path, [`YAML syntax error${at}: ${err.message.split('\n')[0]}`]);
    }
    throw new ConfigError(path, [`JSON syntax error: ${(err as Error).message}`]);
  }
  if (raw === null || raw === undefined) return {};
  if (!isPlain(raw))
    throw new ConfigError(path, [`expected a mapping of settings at the top level, got ${describe(raw)}`]);
  return raw;
}

/** `manifest:data/x.jsonl` in a config file means relative to that file, like every other path in it. */
function resolveCorpusSpec(spec: string, base: string): string {
  const m = /^([a-z]+):(.+)$/i.exec(spec);
  if (!m || isAbsolute(m[2])) return spec;
  return `${m[1]}:${resolve(base, m[2])}`;
}

/**
 * The experiment's config: defaults, then the file (YAML or JSON), then `overrides` (e.g.
 * from command-line flags), validated as a whole. Relative paths in the file are taken
 * from the file's folder. Errors name the file and the field path.
 */
export function loadConfig(path?: string, overrides: object = {}): LemerConfig {
  const source = path ?? 'config';
  let raw: Plain = {};
  if (path !== undefined) {
    raw = readConfigFile(path);
    const base = dirname(resolve(path));
    if (typeof raw.corpus === 'string') raw = { ...raw, corpus: resolveCorpusSpec(raw.corpus, base) };
    const enc = raw.encoders;
    if (isPlain(enc)) {
      const fixed: Plain = { ...enc };
      for (const k of ['text', 'speech']) {
        const e = enc[k];
        if (isPlain(e) && typeof e.path === 'string' && e.path !== '' && !isAbsolute(e.path))
          fixed[k] = { ...e, path: resolve(base, e.path) };
      }
      raw = { ...raw, encoders: fixed };
    }
  }
  if (!isPlain(overrides)) throw new ConfigError(source, ['overrides must be an object']);
  return parseConfig(deepMerge(raw, overrides as Plain), source);
}

/** The config every experiment starts from. */
export function defaultConfig(): LemerConfig {
  return parseConfig({});
}

/** YAML text of a config, as `lemer config show` prints it. */
export function configToYaml(config: LemerConfig): string {
  return stringifyYaml(config, { lineWidth: 0 });
}
