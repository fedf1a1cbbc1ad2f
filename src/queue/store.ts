/**
 * The shared store where workers keep each job's folder (checkpoints, the fold's result), so
 * that a job a killed worker leaves is continued from its last checkpoint by whichever worker
 * takes it next. A directory every worker mounts (NFS, a shared disk); object stores are not
 * supported yet.
 */
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The default store: `$LEMER_CACHE/queue-store`, else `~/.cache/lemer/queue-store` (this machine only). */
export function defaultStore(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.LEMER_CACHE ? resolve(env.LEMER_CACHE) : join(homedir(), '.cache', 'lemer');
  return join(root, 'queue-store');
}

/** `--store <dir>` as an absolute folder (created); a bucket URL is a clear error. */
export function resolveStore(spec: string | undefined): string {
  if (spec === undefined || spec === '') return ensure(defaultStore());
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1]?.toLowerCase();
  if (scheme === 'file') return ensure(new URL(spec).pathname);
  if (scheme)
    throw new Error(
      `--store ${spec}: ${scheme}:// stores are not supported yet; only directories are (a folder every worker mounts, e.g. an NFS share)`,
    );
  return ensure(resolve(spec));
}

function ensure(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new Error(`--store ${dir}: cannot create the folder (${(err as Error).message})`);
  }
  return dir;
}

/** A job's folder in the store: a cross-validation folder holding just that fold. */
export function jobDir(store: string, jobId: string): string {
  return join(store, 'jobs', jobId);
}
