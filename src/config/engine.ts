/** What the config says about running graphs, in the engine's terms. */
import type { RuntimeOptions } from '../graph/runtime.js';
import type { LemerConfig } from './schema.js';

export function runtimeOptions(cfg: LemerConfig): RuntimeOptions {
  return {
    executionProvider: cfg.runtime.executionProvider,
    ...(cfg.runtime.threads ? { threads: cfg.runtime.threads } : {}),
  };
}
