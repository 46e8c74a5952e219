/**
 * encodeImagePng (src/data/png.ts): decoded pixels equal toUint8 of the floats (the reference's
 * clip(x·127.5 + 128, 0, 255) truncation), nearest-neighbour upscaling, grey vs RGB, determinism.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { encodeImagePng } from '../../src/data/png.js';

const decode = (b: Uint8Array) => PNG.sync.read(Buffer.from(b)) as PNG & { colorType: number };

test('RGB [3,2,3] at scale 2 → 6×4 RGB PNG, each pixel a 2×2 block of its uint8 values', () => {
  // Planar [C,H,W]; values chosen across the range: −1 → 0, 0 → 128, 1 → 255, beyond → clipped.
  const img = Float32Array.of(
    -1,
    0,
    1,
    /* R row 0 */ -2,
    2,
    0.5 /* R row 1 */,
    0.25,
    -0.25,
    0,
    /* G */ 1,
    -1,
    0,
    0,
    0,
    0,
    /* B */ -0.99607843,
    0.1,
    -0.5,
  );
  const d = decode(encodeImagePng(img, { channels: 3, height: 2, width: 3 }, 2));
  assert.equal(d.width, 6);
  assert.equal(d.height, 4);
  assert.equal(d.colorType, 2);
  // Expected uint8 per channel: trunc(clip(x·127.5 + 128)) in float32 arithmetic.
  const R = [
    [0, 128, 255],
    [0, 255, 191],
  ];
  const G = [
    [159, 96, 128],
    [255, 0, 128],
  ];
  const B = [
    [128, 128, 128],
    [1, 140, 64],
  ];
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 6; x++) {
      const o = (y * 6 + x) * 4;
      const [sy, sx] = [y >> 1, x >> 1];
      assert.deepEqual([...d.data.subarray(o, o + 4)], [R[sy][sx], G[sy][sx], B[sy][sx], 255], `pixel (${x},${y})`);
    }
  }
});

test('grey [1,2,2] at scale 1 → grey PNG; same floats → same bytes, other floats → other bytes', () => {
  const img = Float32Array.of(-1, -0.5, 0.5, 1);
  const a = encodeImagePng(img, { channels: 1, height: 2, width: 2 });
  const d = decode(a);
  assert.equal(d.colorType, 0);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => d.data[i * 4]),
    [0, 64, 191, 255],
  );
  assert.deepEqual(encodeImagePng(img.slice(), { channels: 1, height: 2, width: 2 }), a);
  assert.notDeepEqual(encodeImagePng(Float32Array.of(-1, -0.5, 0.5, 0.99), { channels: 1, height: 2, width: 2 }), a);
});

test('bad arguments name the problem', () => {
  assert.throws(
    () => encodeImagePng(new Float32Array(8), { channels: 2, height: 2, width: 2 }),
    /channels must be 1 or 3, got 2/,
  );
  assert.throws(
    () => encodeImagePng(new Float32Array(5), { channels: 1, height: 2, width: 2 }),
    /5 values, expected 1×2×2/,
  );
  assert.throws(
    () => encodeImagePng(new Float32Array(4), { channels: 1, height: 2, width: 2 }, 0),
    /scale must be a positive integer, got 0/,
  );
});
