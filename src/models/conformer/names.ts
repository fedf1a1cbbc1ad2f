/**
 * Checkpoint tensor names -> the conformer graph's parameter names. lemer writes the
 * graph's own names (`subsampling.conv.0.weight`, `encoder.layers.0.ffn1.output_dense.weight`),
 * so the map only strips a head's prefix (`conformer.`, as a *ForPreTraining folder nests
 * the base model) and sets aside what the encoder does not use on purpose: the
 * pretraining quantiser and projections, the mask embedding, BatchNorm's batch counter.
 */
export const CONFORMER_PREFIXES = ['conformer.', 'lemer_conformer.'];

const UNUSED: RegExp[] = [
  /^quantizer\./,
  /^project_q\./,
  /^project_hid\./,
  /^masked_spec_embed$/,
  /\.num_batches_tracked$/,
  /^classifier\./,
  /^projector\./,
];

export type MappedName = { kind: 'param'; name: string } | { kind: 'unused' };

export function mapConformerName(key: string): MappedName {
  let name = key;
  for (const p of CONFORMER_PREFIXES) if (name.startsWith(p)) name = name.slice(p.length);
  if (UNUSED.some((re) => re.test(name))) return { kind: 'unused' };
  return { kind: 'param', name };
}
