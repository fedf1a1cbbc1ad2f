// withShape renames dims with an Identity node: its gradient must carry the input's names,
// or a gradient that meets another path's (x used twice) fails to broadcast at build time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ops, gradients } from '../../src/graph/index.js';
import { f64, runGraph } from './helpers.js';

test('gradient through withShape takes the input dims back (x used renamed and as is)', async () => {
  const data = [0.5, -1, 2, 3, -0.25, 1.5];
  const out = await runGraph({ x: f64(data, [2, 3]) }, (g, t) => {
    const x = t.x!.withShape(['batch', 'time']);
    const y = x.withShape(['batch', 'frames']);
    // loss = sum(y^2) + sum(x^3): d/dx = 2x + 3x^2, the two paths summed under x's dims.
    const loss = ops.add(y.mul(y).sum([0, 1]), x.mul(x).mul(x).sum([0, 1]));
    const [dx] = gradients(loss, [x]);
    assert.deepEqual(dx!.shape, x.shape);
    return { dx: dx! };
  });
  data.forEach((v, i) => assert.ok(Math.abs(out.dx![i]! - (2 * v + 3 * v * v)) < 1e-12, `dx[${i}]`));
});
