/** `lemer config show`: the config a run would use, after defaults and validation. */
import type { Command } from 'commander';
import { configToYaml } from '../../config/load.js';
import { contextOf, jsonOption, writeJsonResult, type CliIo } from '../common.js';

export function registerConfig(program: Command, io: CliIo): void {
  const config = program.command('config').description('experiment configuration (YAML or JSON, validated)');
  const show = config
    .command('show')
    .description("print the resolved, validated config as YAML: the paper's defaults, then --config's file");
  jsonOption(show).action((opts: { json?: string }, cmd: Command) => {
    const ctx = contextOf(cmd, io);
    ctx.print(
      `# lemer config${ctx.configPath ? ` from ${ctx.configPath}` : ' (defaults)'}\n${configToYaml(ctx.config)}`,
    );
    writeJsonResult(opts.json, ctx.config);
  });
}
