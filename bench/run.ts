// The one benchmark runner: `npm run bench -- <name> [args]` runs bench/<name>.ts,
// whose default export returns a JSON-able object of figures; the runner prints it.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type Bench = (args: string[]) => Promise<Record<string, unknown>>;

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...args] = process.argv.slice(2);
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <${available.join('|')}> [args]`);
  process.exit(name ? 1 : 0);
}
const file = join(here, `${name}.ts`);
if (!existsSync(file)) throw new Error(`no benchmark ${file}`);
const mod = (await import(pathToFileURL(file).href)) as { default: Bench };
const figures = await mod.default(args);
console.log(JSON.stringify({ bench: name, date: new Date().toISOString(), ...figures }, null, 2));
