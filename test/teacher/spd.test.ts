import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spdInverse } from '../../src/teacher/spd.js';

test('spdInverse [3×3]: exact inverse and log-determinant', () => {
  // A = [[4,2,0],[2,3,1],[0,1,2]], det A = 4·(6−1) − 2·(4−0) = 12.
  const { inv, logdet } = spdInverse(Float64Array.of(4, 2, 0, 2, 3, 1, 0, 1, 2), 3);
  const want = [5, -4, 2, -4, 8, -4, 2, -4, 8].map((v) => v / 12);
  inv.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-15, `inv[${i}] = ${v}`));
  assert.ok(Math.abs(logdet - Math.log(12)) < 1e-14);
});

test('spdInverse rejects an indefinite matrix', () => {
  assert.throws(() => spdInverse(Float64Array.of(1, 2, 2, 1), 2), /not positive definite \(pivot 1 is -3\)/);
});
