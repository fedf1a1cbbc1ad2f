/**
 * The command registry: one entry per top-level command, in the order `lemer --help` lists
 * them. A new command (`lemer graph export`, training, prediction, serving) is one file in
 * this folder exporting a register function, plus one line here.
 */
import type { Command } from 'commander';
import type { CliIo } from '../common.js';
import { registerConfig } from './config.js';
import { registerCorpus } from './corpus.js';
import { registerDemo } from './demo.js';
import { registerFeatures } from './features.js';
import { registerGraph } from './graph-export.js';
import { registerTrain } from './train.js';
import { registerCv } from './cv.js';
import { registerLabels } from './labels.js';
import { registerExport } from './export.js';
import { registerPredict } from './predict.js';
import { registerEncoder } from './encoder.js';
import { registerGrid } from './grid.js';
import { registerAblate } from './ablate.js';
import { registerPretrain } from './pretrain.js';
import { registerServe } from './serve.js';
import { registerWorker } from './worker.js';

export interface CliCommand {
  /** The top-level command name, as typed after `lemer`. */
  name: string;
  /** Adds the command (and its subcommands) to the program; actions write through `io`. */
  register(program: Command, io: CliIo): void;
}

export const COMMANDS: CliCommand[] = [
  { name: 'corpus', register: registerCorpus },
  { name: 'demo', register: registerDemo },
  { name: 'features', register: registerFeatures },
  { name: 'config', register: registerConfig },
  { name: 'graph', register: registerGraph },
  { name: 'train', register: registerTrain },
  { name: 'cv', register: registerCv },
  { name: 'labels', register: registerLabels },
  { name: 'export', register: registerExport },
  { name: 'predict', register: registerPredict },
  { name: 'encoder', register: registerEncoder },
  { name: 'grid', register: registerGrid },
  { name: 'ablate', register: registerAblate },
  { name: 'pretrain', register: registerPretrain },
  { name: 'serve', register: registerServe },
  { name: 'worker', register: registerWorker },
];
