/**
 * `lemer train`: trains one model on one fold (the protocol's first, or --fold), with
 * validation, early stopping and checkpoints, and scores it on that fold's test part.
 * `lemer cv` runs the same on every fold.
 */
import type { Command } from 'commander';
import { contextOf, type CliIo } from '../common.js';
import { runTrainingCommand, trainingOptions, type TrainCliOptions } from './cv.js';

export function registerTrain(program: Command, io: CliIo): void {
  trainingOptions(
    program
      .command('train')
      .description(
        "train a model on one fold (default: the protocol's first) and score its test part: WA/UA, confusion, curves, checkpoints",
      ),
  ).action(async (opts: TrainCliOptions, cmd: Command) => {
    await runTrainingCommand(contextOf(cmd, io), opts, 'train', (f) => (f.length ? f : 'first'));
  });
}
