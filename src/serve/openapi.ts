/** The OpenAPI 3.0 description of the service, served at /openapi.json (written by hand). */
import type { ServeLimits } from './server.js';

const errorRef = { $ref: '#/components/schemas/Error' };
const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: errorRef } },
});

export function openApiDocument(
  limits: ServeLimits,
  labels: string[],
  version: string,
): Record<string, unknown> {
  return {
    openapi: '3.0.3',
    info: {
      title: 'lemer',
      version,
      description:
        'Speech + text emotion recognition (LE-MER). POST a recording and its transcript to /v1/predict; ' +
        'the answer is the object `lemer predict --json` writes.',
    },
    paths: {
      '/v1/predict': {
        post: {
          summary: 'Classify the emotion of one utterance',
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  properties: {
                    audio: { type: 'string', format: 'binary', description: 'WAV or FLAC file' },
                    text: { type: 'string', description: 'the transcript (UTF-8)' },
                    context: {
                      type: 'array',
                      items: { type: 'string' },
                      description: 'previous utterances of the dialogue, oldest first (repeat the field)',
                    },
                  },
                },
              },
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    audio: { type: 'string', format: 'byte', description: 'WAV or FLAC bytes, base64' },
                    text: { type: 'string', maxLength: limits.maxTextChars },
                    context: { type: 'array', items: { type: 'string' } },
                    name: { type: 'string', description: 'a name echoed in the result' },
                  },
                },
              },
            },
          },
          responses: {
            '200': {
              description: 'The prediction',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Prediction' } } },
            },
            '400': errorResponse(
              'A field is missing or malformed (invalid_json, invalid_utf8, missing_audio, ...)',
            ),
            '408': errorResponse(
              `The request (headers and body) was not complete after ${limits.requestTimeoutMs / 1000} s (request_timeout); the connection is closed`,
            ),
            '413': errorResponse(
              `Too large: body over ${limits.maxBodyBytes} bytes, audio over ${limits.maxSeconds} s or text over ${limits.maxTextChars} characters`,
            ),
            '415': errorResponse('Content type other than multipart/form-data or application/json'),
            '422': errorResponse('The audio cannot be decoded (empty, truncated, not WAV/FLAC)'),
            '503': {
              ...errorResponse(
                'The work queue is full (queue_full), the inference worker crashed during this prediction and is being restarted (worker_crashed), or the server is shutting down',
              ),
              headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } },
            },
            '504': errorResponse(`The prediction took longer than ${limits.timeoutMs / 1000} s`),
          },
        },
      },
      '/healthz': {
        get: {
          summary: 'Liveness and readiness: 200 while the model is loaded and the worker runs',
          responses: {
            '200': {
              description: 'Serving',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
            '503': errorResponse(
              'The inference worker is being restarted (worker_restarting), is gone (model_unavailable), or the server is shutting down',
            ),
          },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus text format: requests, latencies, queue depth, errors',
          responses: {
            '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3 document', content: { 'application/json': {} } } },
        },
      },
      '/': {
        get: {
          summary: 'The web page: upload or record audio, see probabilities and label attention',
          responses: { '200': { description: 'HTML page', content: { 'text/html': {} } } },
        },
      },
      '/model/{file}': {
        get: {
          summary:
            "The served model folder's files (lemer-model.json and the files it lists), for in-browser inference",
          parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': { description: 'The file' },
            '404': { description: 'Not a file of the model folder' },
          },
        },
      },
    },
    components: {
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string' }, message: { type: 'string' } },
            },
          },
        },
        Prediction: {
          type: 'object',
          required: ['label', 'probs', 'modality', 'method', 'warnings'],
          properties: {
            name: { type: 'string' },
            label: { type: 'string', enum: labels },
            probs: {
              type: 'object',
              properties: Object.fromEntries(labels.map((l) => [l, { type: 'number' }])),
            },
            modality: { type: 'string', enum: ['speech+text', 'speech', 'text'] },
            method: { type: 'string', enum: ['model', 'speech-label-attention', 'speech-model'] },
            note: { type: 'string' },
            transcript: {
              type: 'object',
              properties: { text: { type: 'string' }, source: { type: 'string' } },
            },
            tokens: {
              type: 'array',
              items: {
                type: 'object',
                properties: { token: { type: 'string' }, weight: { type: 'number' } },
              },
            },
            frames: {
              type: 'array',
              items: {
                type: 'object',
                properties: { time: { type: 'number' }, weight: { type: 'number' } },
              },
            },
            audio: {
              type: 'object',
              properties: {
                seconds: { type: 'number' },
                sampleRate: { type: 'integer' },
                originalSampleRate: { type: 'integer' },
                channels: { type: 'integer' },
              },
            },
            warnings: { type: 'array', items: { type: 'string' } },
          },
        },
      },
    },
  };
}
