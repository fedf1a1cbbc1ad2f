// Front-end throughput: log-mel (one core) and the WordPiece tokenizer.
import { benchLogMel } from './lib/frontend-audio.js';
import { benchTokenizer } from './lib/frontend-text.js';

export default async function frontend(): Promise<Record<string, unknown>> {
  const audio = await benchLogMel();
  const text = await benchTokenizer();
  return { ...audio, ...text, goal_logmel_realtime_factor: 500 };
}
