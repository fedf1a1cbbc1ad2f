/**
 * The HTTP service: Fastify in front of an InferencePool (one worker thread that holds the
 * model). Every refusal is a JSON `{ error: { code, message } }` with a 4xx/5xx status and
 * the server keeps serving; the limits (body size, audio seconds, text length, queue bound,
 * timeouts) are options with defaults fit for utterances.
 */
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { probeBytes } from '../predict/wav-stream.js';
import { prepareText } from '../predict/input.js';
import type { Prediction } from '../predict/lemer.js';
import { errorBody, HttpError } from './errors.js';
import { Metrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { InferencePool, type PredictJob } from './pool.js';
import type { ModelInfo } from './protocol.js';

export interface ServeLimits {
  /** Largest audio upload in bytes (multipart file, or decoded base64). */
  maxBodyBytes: number;
  /** Longest audio in seconds; longer recordings belong to `lemer predict --segment`. */
  maxSeconds: number;
  /** Longest transcript in characters. */
  maxTextChars: number;
  /** Predictions running or waiting before 503. */
  maxQueue: number;
  /** A prediction that takes longer is answered 504. */
  timeoutMs: number;
  /**
   * A client that has not sent its whole request (headers and body) by then gets a 408 JSON
   * error and its connection is closed (Node's requestTimeout, checked every second).
   */
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  maxBodyBytes: 16 * 1024 * 1024,
  maxSeconds: 60,
  maxTextChars: 5000,
  maxQueue: 16,
  timeoutMs: 30_000,
  requestTimeoutMs: 30_000,
};

export interface ServeOptions {
  /** The model folder written by `lemer export`. */
  model: string;
  int8?: boolean;
  threads?: number;
  /** Most queued requests the worker runs together (default 8; 1: one at a time). */
  batchSize?: number;
  limits?: Partial<ServeLimits>;
  /** Called with one line per notable event (start, shutdown, internal errors). */
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export interface Server {
  app: FastifyInstance;
  pool: InferencePool;
  metrics: Metrics;
  limits: ServeLimits;
  info: ModelInfo;
  /** Starts listening; resolves with the address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<{ url: string; port: number }>;
  /** Stops accepting, finishes the requests in flight, then stops the worker. */
  close(): Promise<void>;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** What a request asks for, before the model's checks. */
interface RawInput {
  audio?: Uint8Array;
  /** UTF-8 bytes (multipart) or a string (JSON). */
  text?: string | Uint8Array;
  context: string[];
  name?: string;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function fromJson(body: unknown, limits: ServeLimits): RawInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError(
      400,
      'invalid_body',
      'the JSON body must be an object { audio: <base64>, text, context? }',
    );
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (!['audio', 'text', 'context', 'name'].includes(k))
      throw new HttpError(400, 'unknown_field', `unknown field '${k}' (fields: audio, text, context, name)`);
  const out: RawInput = { context: [] };
  if (b.audio !== undefined && b.audio !== null) {
    if (typeof b.audio !== 'string')
      throw new HttpError(400, 'invalid_base64', `'audio' must be a base64 string, got ${typeof b.audio}`);
    const s = b.audio.replace(/\s+/g, '');
    if (!BASE64.test(s) || s.length % 4 === 1)
      throw new HttpError(
        400,
        'invalid_base64',
        "'audio' is not valid base64 (A-Z a-z 0-9 + / and = padding)",
      );
    if ((s.length * 3) / 4 > limits.maxBodyBytes)
      throw new HttpError(413, 'body_too_large', `'audio' is over ${limits.maxBodyBytes} bytes`);
    out.audio = new Uint8Array(Buffer.from(s, 'base64'));
  }
  if (b.text !== undefined && b.text !== null) {
    if (typeof b.text !== 'string')
      throw new HttpError(400, 'invalid_text', `'text' must be a string, got ${typeof b.text}`);
    out.text = b.text;
  }
  if (b.context !== undefined) {
    if (!Array.isArray(b.context) || !b.context.every((c) => typeof c === 'string'))
      throw new HttpError(400, 'invalid_context', "'context' must be an array of strings (oldest first)");
    out.context = b.context as string[];
  }
  if (b.name !== undefined) {
    if (typeof b.name !== 'string') throw new HttpError(400, 'invalid_name', "'name' must be a string");
    out.name = b.name;
  }
  return out;
}

/** A field's bytes: fields are decoded as latin1 (one char per byte) unless the part names a charset. */
function fieldBytes(value: string, mimetype: string): Uint8Array {
  if (!/charset=/i.test(mimetype)) return new Uint8Array(Buffer.from(value, 'latin1'));
  if (value.includes('\uFFFD')) throw new HttpError(400, 'invalid_utf8', 'the text field is not valid UTF-8');
  return new Uint8Array(Buffer.from(value, 'utf8'));
}

async function fromMultipart(req: FastifyRequest): Promise<RawInput> {
  const out: RawInput = { context: [] };
  try {
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        const bytes = new Uint8Array(await part.toBuffer());
        if (part.fieldname === 'audio') {
          if (out.audio) throw new HttpError(400, 'duplicate_field', "more than one 'audio' file");
          out.audio = bytes;
          if (part.filename) out.name = part.filename;
        } else if (part.fieldname === 'text') out.text = bytes;
        else
          throw new HttpError(
            400,
            'unknown_field',
            `unknown file field '${part.fieldname}' (fields: audio, text, context)`,
          );
      } else {
        if (part.valueTruncated)
          throw new HttpError(413, 'text_too_long', `the field '${part.fieldname}' is over the size limit`);
        const value = String(part.value);
        if (part.fieldname === 'text') out.text = fieldBytes(value, part.mimetype);
        else if (part.fieldname === 'context') {
          const c = prepareText(fieldBytes(value, part.mimetype), 'context');
          out.context.push(c.text);
        } else if (part.fieldname === 'name') out.name = Buffer.from(value, 'latin1').toString('utf8');
        else if (part.fieldname === 'audio')
          throw new HttpError(
            400,
            'invalid_audio_field',
            "'audio' must be a file part (curl -F audio=@clip.wav)",
          );
        else
          throw new HttpError(
            400,
            'unknown_field',
            `unknown field '${part.fieldname}' (fields: audio, text, context)`,
          );
      }
    }
  } catch (err) {
    if (err instanceof HttpError || typeof (err as FastifyError).statusCode === 'number') throw err;
    const msg = (err as Error).message;
    if (/UTF-8/.test(msg)) throw new HttpError(400, 'invalid_utf8', msg);
    throw new HttpError(400, 'invalid_multipart', `the multipart body cannot be read: ${msg}`);
  }
  return out;
}

/** Checks a request against the limits and the model; returns the job for the worker. */
function toJob(raw: RawInput, limits: ServeLimits, info: ModelInfo): PredictJob {
  let text: string | undefined;
  if (raw.text !== undefined) {
    if (raw.text instanceof Uint8Array && raw.text.length > 4 * limits.maxTextChars)
      throw new HttpError(
        413,
        'text_too_long',
        `the text is ${raw.text.length} bytes (at most ${limits.maxTextChars} characters)`,
      );
    if (typeof raw.text === 'string' && raw.text.length > limits.maxTextChars)
      throw new HttpError(
        413,
        'text_too_long',
        `the text is ${raw.text.length} characters (at most ${limits.maxTextChars})`,
      );
    try {
      text = prepareText(raw.text, 'text').text;
    } catch (err) {
      const msg = (err as Error).message;
      throw new HttpError(
        /UTF-8/.test(msg) ? 400 : 413,
        /UTF-8/.test(msg) ? 'invalid_utf8' : 'text_too_long',
        msg,
      );
    }
    if (text.length > limits.maxTextChars)
      throw new HttpError(
        413,
        'text_too_long',
        `the text is ${text.length} characters (at most ${limits.maxTextChars})`,
      );
    if (text === '') text = undefined;
  }
  if (info.kind !== 'text') {
    if (raw.audio === undefined)
      throw new HttpError(400, 'missing_audio', "no audio: send a WAV or FLAC file as the 'audio' field");
    if (raw.audio.length === 0) throw new HttpError(422, 'empty_audio', 'the audio file is empty (0 bytes)');
    if (raw.audio.length > limits.maxBodyBytes)
      throw new HttpError(413, 'body_too_large', `the audio is over ${limits.maxBodyBytes} bytes`);
    const h = probeBytes(raw.audio.subarray(0, 1 << 16), raw.audio.length);
    if (h?.frames && h.frames / h.sampleRate > limits.maxSeconds)
      throw new HttpError(
        413,
        'audio_too_long',
        `${(h.frames / h.sampleRate).toFixed(1)} s of audio (at most ${limits.maxSeconds} s): split long recordings (lemer predict --segment)`,
      );
  }
  if (text === undefined && info.kind !== 'speech' && !info.speechOnly)
    throw new HttpError(
      400,
      'missing_text',
      "no transcript: send the 'text' field (this model has no speech-only path)",
    );
  return {
    ...(info.kind !== 'text' ? { audio: raw.audio } : {}),
    ...(text !== undefined ? { text } : {}),
    ...(raw.context.length ? { context: raw.context } : {}),
    ...(raw.name !== undefined ? { name: raw.name } : {}),
    maxSeconds: limits.maxSeconds,
  };
}

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_REQ_FILE_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_PARTS_LIMIT: 'too_many_parts',
  FST_FILES_LIMIT: 'too_many_parts',
  FST_FIELDS_LIMIT: 'too_many_parts',
  FST_PROTO_VIOLATION: 'invalid_multipart',
  FST_INVALID_JSON_FIELD_ERROR: 'invalid_multipart',
};

/** Builds the service and starts its worker (the model is loaded before this resolves). */
export async function createServer(opts: ServeOptions): Promise<Server> {
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const log = opts.log ?? (() => undefined);
  const pool = await InferencePool.start({
    dir: opts.model,
    int8: opts.int8,
    threads: opts.threads,
    batchSize: opts.batchSize,
    maxQueue: limits.maxQueue,
    log,
  });
  const info = pool.info;
  const metrics = new Metrics({
    queueDepth: () => pool.depth,
    queueMax: () => pool.maxQueue,
    workerRestarts: () => pool.restarts,
    batches: () => ({ runs: pool.batches, predictions: pool.batchedPredictions }),
  });
  const jsonLimit = Math.ceil((limits.maxBodyBytes * 4) / 3) + 8 * limits.maxTextChars + 64 * 1024;
  const app = Fastify({
    logger: false,
    bodyLimit: jsonLimit,
    requestTimeout: limits.requestTimeoutMs,
    // A socket silent for this long is closed; a request waiting in the queue is silent until
    // it is answered (at the latest 504 after timeoutMs), so the bound is above both timeouts.
    connectionTimeout: Math.max(limits.requestTimeoutMs, limits.timeoutMs) + 5000,
    // Node checks the request timeout every connectionsCheckingInterval (default 30 s): often
    // enough that a stalled upload is answered near its deadline. headersTimeout may not
    // exceed requestTimeout.
    http: {
      connectionsCheckingInterval: Math.max(50, Math.min(1000, limits.requestTimeoutMs / 4)),
      headersTimeout: Math.min(60_000, limits.requestTimeoutMs),
    },
    // A slow client (its request not complete by requestTimeout) or a malformed request that
    // never reaches a route: answered here, on the socket, in the service's error format.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      let status = 400;
      let code = 'bad_request';
      let message = `the request cannot be parsed: ${err.message}`;
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        status = 408;
        code = 'request_timeout';
        message = `the request was not complete after ${limits.requestTimeoutMs / 1000} s (a slow or stalled upload): the connection is closed`;
      } else if (err.code === 'HPE_HEADER_OVERFLOW') {
        status = 431;
        code = 'headers_too_large';
        message = 'the request headers are too large';
      }
      metrics.error(code);
      metrics.observe('unmatched', '-', status, 0);
      // A response already started on this socket cannot be followed by another one.
      const res = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (socket.writable && !res?.headersSent) {
        const body = JSON.stringify(errorBody(code, message));
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy(err);
    },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  app.removeAllContentTypeParsers();
  // JSON is parsed from bytes, so that invalid UTF-8 is refused rather than replaced.
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: jsonLimit },
    (_req, body, done) => {
      let s: string;
      try {
        s = new TextDecoder('utf-8', { fatal: true }).decode(body as Buffer);
      } catch {
        done(new HttpError(400, 'invalid_utf8', 'the JSON body is not valid UTF-8'), undefined);
        return;
      }
      try {
        done(null, JSON.parse(s) as unknown);
      } catch (err) {
        done(
          new HttpError(400, 'invalid_json', `the body is not valid JSON: ${(err as Error).message}`),
          undefined,
        );
      }
    },
  );
  await app.register(multipart, {
    defCharset: 'latin1',
    throwFileSizeLimit: true,
    limits: {
      fileSize: limits.maxBodyBytes,
      fieldSize: 4 * limits.maxTextChars,
      fields: 64,
      files: 2,
      parts: 66,
      fieldNameSize: 100,
    },
  });

  let closing = false;
  // While shutting down, a finished keep-alive connection is closed at once (otherwise close
  // would wait for its keep-alive timeout).
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    metrics.observe(
      req.routeOptions.url ?? 'unmatched',
      req.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    if (closing) app.server.closeIdleConnections();
    done();
  });
  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    // The client error handler has answered (408) and closed the socket: the body reader's
    // "aborted" error that follows is not another error to count or answer.
    if (req.raw.socket?.destroyed) return;
    let status: number;
    let code: string;
    let message = err.message;
    if (err instanceof HttpError) {
      status = err.statusCode;
      code = err.code;
      reply.headers(err.headers);
    } else {
      status = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 500;
      code = FASTIFY_CODES[err.code] ?? (status < 500 ? 'bad_request' : 'internal');
      if (code === 'unsupported_media_type')
        message =
          'send multipart/form-data (audio file + text field) or application/json ({ audio: base64, text })';
      if (status >= 500) {
        log('error', `internal error: ${err.stack ?? err.message}`);
        message = 'internal error (see the server log)';
      }
    }
    metrics.error(code);
    void reply.code(status).send(errorBody(code, message));
  });
  app.setNotFoundHandler((req, reply) => {
    metrics.error('not_found');
    void reply
      .code(404)
      .send(errorBody('not_found', `no route ${req.method} ${req.url} (see /openapi.json)`));
  });

  app.get('/healthz', async (_req, reply) => {
    const problem = pool.problem;
    if (problem) {
      void reply.code(503);
      return errorBody(problem.code, problem.message);
    }
    return {
      status: 'ok',
      model: { dir: info.dir, kind: info.kind, labels: info.labels, graph: info.graphFile },
      queue: { depth: pool.depth, capacity: pool.maxQueue },
    };
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.type('text/plain; version=0.0.4; charset=utf-8');
    return metrics.render();
  });
  const doc = openApiDocument(limits, info.labels, packageVersion());
  app.get('/openapi.json', async () => doc);
  // The web page, its bundle, onnxruntime-web's WASM and the model's files (src/serve/web.ts).
  await app.register((await import('./web.js')).webPage, { modelDir: info.dir });
  // A full queue is answered before the body is read: shedding load costs no upload parsing.
  const admit = async () => {
    const refused = pool.refusal();
    if (refused) throw refused;
  };
  app.post('/v1/predict', { onRequest: admit }, async (req): Promise<Prediction> => {
    let raw: RawInput;
    if (req.isMultipart()) raw = await fromMultipart(req);
    else if (req.body !== undefined) raw = fromJson(req.body, limits);
    else
      throw new HttpError(
        415,
        'unsupported_media_type',
        'no body: send multipart/form-data (audio file + text field) or application/json ({ audio: base64, text })',
      );
    return pool.predict(toJob(raw, limits, info), limits.timeoutMs);
  });

  let closed: Promise<void> | null = null;
  return {
    app,
    pool,
    metrics,
    limits,
    info,
    async listen(port, host) {
      await app.listen({ port, host });
      const addr = app.server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      const h = host.includes(':') ? `[${host}]` : host;
      return { url: `http://${h}:${p}`, port: p };
    },
    close() {
      closed ??= (async () => {
        closing = true;
        await app.close();
        await pool.close();
      })();
      return closed;
    },
  };
}
