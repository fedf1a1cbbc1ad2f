/** A running server on the tiny test model of test/predict, on 127.0.0.1 with a free port. */
import { createServer, type Server, type ServeLimits } from '../../src/serve/index.js';
import { exportedTinyModel } from '../predict/helpers.js';

export async function startServer(
  limits: Partial<ServeLimits> = {},
): Promise<{ server: Server; url: string; dir: string }> {
  const { dir } = await exportedTinyModel();
  const server = await createServer({ model: dir, threads: 1, limits });
  const { url } = await server.listen(0, '127.0.0.1');
  return { server, url, dir };
}

/** A multipart body from parts: strings become fields, { bytes, filename } files. */
export function form(
  parts: Record<string, string | { bytes: Uint8Array; filename: string; type?: string }>,
): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(parts)) {
    if (typeof v === 'string') f.append(k, v);
    else f.append(k, new Blob([v.bytes], { type: v.type ?? 'audio/wav' }), v.filename);
  }
  return f;
}
