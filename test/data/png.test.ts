import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { FASHION_CLASS_NAMES, MNIST_CLASS_NAMES } from '../../src/data/datasets.js';
import { glyphRows, textWidth } from '../../src/data/font.js';
import { STUDENT_TITLE, TEACHER_TITLE, renderSampleGrid, toUint8 } from '../../src/data/png.js';

describe('toUint8', () => {
  test('exact reference values: clip(x·127.5 + 128, 0, 255) truncated, float32 arithmetic', () => {
    const x = new Float32Array([-1, 1, 0, 0.996, -1.5, 2, Number.NaN, -0.9960784316062927, 0.5, -0.5, 1 / 127.5]);
    // -1 → 0.5 → 0; 0.996 → 254.99 → 254; -0.99607843: x·127.5 = -126.99999998 rounds to -127 in float32,
    // so 1 (float64 would give 0); 0.5 → 191.75 → 191; -0.5 → 64.25 → 64; 1/127.5 → 129.
    assert.deepEqual(Array.from(toUint8(x)), [0, 255, 128, 254, 0, 255, 0, 1, 191, 64, 129]);
  });

  test('bytes scaled as the datasets do (u/127.5 − 1) map back to themselves', () => {
    const x = Float32Array.from({ length: 256 }, (_, u) => u / 127.5 - 1);
    assert.deepEqual(
      Array.from(toUint8(x)),
      Array.from({ length: 256 }, (_, u) => u),
    );
  });
});

describe('font', () => {
  test('every character of the titles and class names has a glyph (no ? fallback)', () => {
    const unknown = glyphRows('\u0001');
    assert.deepEqual(unknown, glyphRows('?'));
    for (const ch of new Set([
      ...TEACHER_TITLE,
      ...STUDENT_TITLE,
      ...FASHION_CLASS_NAMES.join(''),
      ...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz():-/.',
    ])) {
      if (ch === '?') continue;
      assert.notDeepEqual(glyphRows(ch), unknown, `glyph for '${ch}'`);
      assert.ok(
        glyphRows(ch).every((r) => r >= 0 && r < 32),
        `glyph for '${ch}' fits 5 columns`,
      );
    }
    assert.deepEqual(glyphRows('-'), [0, 0, 0, 31, 0, 0, 0]);
    assert.equal(textWidth('ab', 2), 22);
  });
});

describe('renderSampleGrid', () => {
  test('writes a valid PNG of the expected size; teacher and student panels side by side', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'png-test-'));
    try {
      const n = 30;
      const per = 32 * 32;
      const labels = Int32Array.from({ length: n }, (_, i) => i % 10); // 3 samples per class
      const teacher = new Float32Array(n * per).fill(-1); // black
      const student = new Float32Array(n * per).fill(1); // white
      teacher[5 * per] = 1; // sample 5 (class 5, column 0): top-left pixel white
      const path = join(dir, 'grid.png');
      const { png: encoded, ...size } = renderSampleGrid({
        panels: [
          { title: TEACHER_TITLE, images: teacher },
          { title: STUDENT_TITLE, images: student },
        ],
        shape: { channels: 1, height: 32, width: 32 },
        labels,
        classNames: MNIST_CLASS_NAMES,
      });
      // margin 6 + label column (5·2 + 6) + 2 panels of 3·64 + 2·2 px + panel gap 24 + margin 6;
      // title band 6 + 14 + 6, then 10 rows of 64 px with 2 px gaps, margin 6.
      assert.deepEqual(size, { width: 444, height: 690 });
      await writeFile(path, encoded);
      const bytes = await readFile(path);
      assert.deepEqual(Array.from(bytes.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const png = PNG.sync.read(bytes);
      assert.deepEqual([png.width, png.height], [444, 690]);
      const at = (x: number, y: number): number[] =>
        Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 4));
      const rowY = (r: number): number => 26 + r * 66;
      const panelX = (k: number): number => 22 + k * (196 + 24);
      assert.deepEqual(at(panelX(0) + 10, rowY(0) + 10), [0, 0, 0, 255]); // teacher: black
      assert.deepEqual(at(panelX(1) + 10, rowY(0) + 10), [255, 255, 255, 255]); // student: white
      // The changed pixel is upscaled 2×: a 2×2 white block at class-5 row, column 0.
      for (const [dx, dy] of [
        [0, 0],
        [1, 0],
        [0, 1],
        [1, 1],
      ])
        assert.deepEqual(at(panelX(0) + dx, rowY(5) + dy), [255, 255, 255, 255]);
      assert.deepEqual(at(panelX(0) + 2, rowY(5)), [0, 0, 0, 255]);
      assert.deepEqual(at(panelX(0) + 64, rowY(0) + 10), [255, 255, 255, 255]); // gap between columns
      // Ink in the title band and in the row-label column, none in the top margin.
      const ink = (x0: number, x1: number, y0: number, y1: number): number => {
        let c = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (at(x, y)[0] === 0) c++;
        return c;
      };
      assert.ok(ink(panelX(0), panelX(0) + 196, 6, 20) > 50);
      assert.ok(ink(6, 16, rowY(3), rowY(3) + 64) > 10);
      assert.equal(ink(0, 444, 0, 6), 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('RGB panels and unlabelled grids; clear errors for bad inputs', () => {
    const rgb = new Float32Array(4 * 3 * 8 * 8).fill(-1);
    for (let i = 0; i < 4; i++) rgb.fill(1, i * 192, i * 192 + 64); // red channel on
    const out = renderSampleGrid({
      panels: [{ title: 'x', images: rgb }],
      shape: { channels: 3, height: 8, width: 8 },
      scale: 1,
    });
    const png = PNG.sync.read(Buffer.from(out.png));
    assert.deepEqual([png.width, png.height], [out.width, out.height]);
    const o = (26 * png.width + 6) * 4; // first cell, top-left
    assert.deepEqual(Array.from(png.data.subarray(o, o + 4)), [255, 0, 0, 255]);
    assert.throws(
      () =>
        renderSampleGrid({
          panels: [{ title: 'x', images: new Float32Array(10) }],
          shape: { channels: 2, height: 1, width: 5 },
        }),
      /channels must be 1 or 3/,
    );
    assert.throws(
      () =>
        renderSampleGrid({
          panels: [
            { title: 'a', images: new Float32Array(64) },
            { title: 'b', images: new Float32Array(128) },
          ],
          shape: { channels: 1, height: 8, width: 8 },
        }),
      /panel 'b' has 128 values/,
    );
    assert.throws(
      () =>
        renderSampleGrid({
          panels: [{ title: 'a', images: new Float32Array(64) }],
          shape: { channels: 1, height: 8, width: 8 },
          labels: new Int32Array([3]),
          classNames: ['a', 'b'],
        }),
      /label 3 of sample 0 is outside \[0, 2\)/,
    );
  });
});
