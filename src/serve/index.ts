/** The HTTP service (`lemer serve`): Fastify in front of a worker thread that holds the model. */
export { createServer, DEFAULT_LIMITS, type Server, type ServeOptions, type ServeLimits } from './server.js';
export { InferencePool, type PoolOptions, type PredictJob } from './pool.js';
export { Metrics, LATENCY_BUCKETS } from './metrics.js';
export { openApiDocument } from './openapi.js';
export { HttpError, errorBody, type ErrorBody } from './errors.js';
export type { ModelInfo } from './protocol.js';
