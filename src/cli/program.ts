/** The `lemer` program: global options, the registered commands, and error reporting. */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../config/load.js';
import { LOG_LEVELS } from '../util/log.js';
import type { CliIo } from './common.js';
import { COMMANDS } from './commands/index.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Builds the program; tests and embedders can pass their own streams. */
export function createProgram(io: CliIo): Command {
  const program = new Command('lemer')
    .description('LE-MER multimodal (speech + text) emotion recognition')
    .version(version(), '-V, --version')
    .option('--config <file>', "experiment config, YAML or JSON (default: the paper's settings)")
    .addOption(
      new Option(
        '--log-level <level>',
        'log detail on stderr (default: $LEMER_LOG_LEVEL, else info)',
      ).choices(LOG_LEVELS as unknown as string[]),
    )
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      outputError: (s, write) => write(`lemer: ${s.replace(/^error: /, '')}`),
    })
    // Throw instead of exiting, so that runCli decides the exit code (and tests can run it in-process).
    .exitOverride();
  for (const c of COMMANDS) c.register(program, io);
  return program;
}

/** Whether errors should carry their stack: --log-level debug|trace, or the same in LEMER_LOG_LEVEL. */
function wantsStack(argv: string[]): boolean {
  let level = process.env.LEMER_LOG_LEVEL;
  argv.forEach((a, i) => {
    if (a === '--log-level') level = argv[i + 1];
    else if (a.startsWith('--log-level=')) level = a.slice('--log-level='.length);
  });
  return level === 'debug' || level === 'trace';
}

/**
 * Runs `lemer` with the arguments after the program name; returns the exit code. Every error
 * ends as `lemer: <message>` on stderr and code 1 (with the stack at --log-level debug).
 */
export async function runCli(
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const program = createProgram(io);
  if (argv.length === 0) {
    program.outputHelp();
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    // Commander has already printed its own message (usage errors) or the help text.
    if (err instanceof CommanderError) return err.exitCode;
    const e = err instanceof Error ? err : new Error(String(err));
    const lines = e instanceof ConfigError ? e.message.split('\n') : [e.message];
    for (const l of lines) io.stderr.write(`lemer: ${l}\n`);
    if (wantsStack(argv) && e.stack) io.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
