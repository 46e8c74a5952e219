import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { shardCount } from '../../src/spec/names.js';
import {
  labelForSeed,
  labelsForSeedRange,
  noiseForSeed,
  noiseForSeedRange,
  seedRange,
  splitSeedRange,
} from '../../src/data/seeds.js';

const img = { channels: 1, height: 32, width: 32 };

/** |a - b| within a few ulps: the contract matches NumPy up to libm's last bit. */
const close = (a: number, b: number): boolean => Math.abs(a - b) <= 4 * Number.EPSILON * Math.max(1, Math.abs(b));

describe('noiseForSeed', () => {
  test('first values pinned to numpy.random.RandomState(seed).standard_normal', () => {
    // Values printed by NumPy 2.4 (legacy RandomState: MT19937 + Marsaglia polar).
    const pinned: Record<number, number[]> = {
      0: [
        1.764052345967664, 0.4001572083672233, 0.9787379841057392, 2.240893199201458, 1.8675579901499675,
        -0.977277879876411, 0.9500884175255894,
      ],
      42: [
        0.4967141530112327, -0.13826430117118466, 0.6476885381006925, 1.5230298564080254, -0.23415337472333597,
        -0.23413695694918055, 1.5792128155073915,
      ],
      2147483647: [
        1.628680950870893, -1.1083224214197442, 1.3931666912751481, 0.6885372651891304, -1.1734482800347712,
        -0.17520816359917246, -1.0788842665596912,
      ],
    };
    for (const [seed, want] of Object.entries(pinned)) {
      const got = noiseForSeed(Number(seed), { channels: 1, height: 1, width: 7 });
      assert.ok(got instanceof Float64Array);
      want.forEach((w, i) => assert.ok(close(got[i], w), `seed ${seed}[${i}]: ${got[i]} vs ${w}`));
      // A longer draw starts with the same values: the stream does not depend on the shape.
      const long = noiseForSeed(Number(seed), img);
      assert.deepEqual(Array.from(long.subarray(0, 7)), Array.from(got));
    }
  });

  test('same seed gives identical noise; different seeds differ', () => {
    assert.deepEqual(noiseForSeed(123, img), noiseForSeed(123, img));
    const a = noiseForSeed(123, img);
    const b = noiseForSeed(124, img);
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
    assert.equal(same, 0);
  });

  test('100k normals have mean ~0 and variance ~1; adjacent seeds uncorrelated', () => {
    const x = noiseForSeed(7, { channels: 1, height: 100, width: 1000 });
    let s = 0;
    let s2 = 0;
    for (const v of x) {
      s += v;
      s2 += v * v;
    }
    const mean = s / x.length;
    const variance = s2 / x.length - mean * mean;
    assert.ok(Math.abs(mean) < 0.015, `mean ${mean}`); // 4.7 standard errors
    assert.ok(Math.abs(variance - 1) < 0.02, `variance ${variance}`);
    // Correlation of the same position across consecutive seeds (1000 pairs): |r| < 0.12 (~4 s.e.).
    let sxy = 0;
    for (let seed = 0; seed < 1000; seed++) sxy += noiseForSeed(seed, img)[5] * noiseForSeed(seed + 1, img)[5];
    assert.ok(Math.abs(sxy / 1000) < 0.12, `corr ${sxy / 1000}`);
  });

  test('batched float32 noise equals float32-rounded per-seed noise', () => {
    const batch = noiseForSeedRange(seedRange(10, 13), img);
    assert.ok(batch instanceof Float32Array);
    assert.equal(batch.length, 3 * 1024);
    for (let k = 0; k < 3; k++)
      assert.deepEqual(batch.subarray(k * 1024, (k + 1) * 1024), Float32Array.from(noiseForSeed(10 + k, img)));
  });

  test('invalid seeds and shapes throw a clear error', () => {
    for (const bad of [-1, 1.5, 2 ** 31, Number.NaN])
      assert.throws(() => noiseForSeed(bad, img), /seeds are integers in \[0, 2\^31\)/);
    assert.throws(() => noiseForSeed(0, { channels: 0, height: 2, width: 2 }), /channels must be a positive integer/);
    assert.throws(() => labelForSeed(-3, 10), /seed -3 is invalid/);
  });
});

describe('labelForSeed', () => {
  test('pinned to numpy.random.RandomState(seed + 2**31).randint(K)', () => {
    assert.deepEqual(
      Array.from({ length: 13 }, (_, s) => labelForSeed(s, 10)),
      [4, 1, 5, 0, 3, 9, 2, 3, 1, 6, 9, 4, 9],
    );
    assert.equal(labelForSeed(2 ** 31 - 1, 10), 3);
    assert.deepEqual(
      [0, 1, 2, 3].map((s) => labelForSeed(s, 1000)),
      [282, 684, 939, 832],
    );
    assert.equal(labelForSeed(5, 1), 0);
  });

  test('labels are uniform over classes (10k seeds)', () => {
    const labels = labelsForSeedRange(seedRange(0, 10000), 10);
    const counts = new Array<number>(10).fill(0);
    for (const y of labels) counts[y]++;
    // Binomial(10000, 0.1): sd 30; allow 5 sd.
    for (const c of counts) assert.ok(Math.abs(c - 1000) < 150, `counts ${counts}`);
    assert.throws(() => labelForSeed(0, 0), /numClasses must be an integer >= 1/);
  });
});

describe('seed ranges', () => {
  test('validation: non-empty, not reversed, integers, within [0, 2^31)', () => {
    assert.deepEqual(seedRange(0, 5), { start: 0, end: 5 });
    assert.throws(() => seedRange(5, 5), /\[5, 5\) is empty/);
    assert.throws(() => seedRange(6, 5), /\[6, 5\) is reversed/);
    assert.throws(() => seedRange(0.5, 5), /integer bounds/);
    assert.throws(() => seedRange(-1, 5), /within \[0, 2\^31\)/);
    assert.throws(() => seedRange(0, 2 ** 31 + 1), /within \[0, 2\^31\)/);
  });

  test("shardCount (src/spec, the operator and the job spec use it) equals splitSeedRange's length", () => {
    for (const [start, end, size] of [
      [0, 2500, 1024],
      [0, 2048, 1024],
      [7, 8, 1],
      [5, 1000, 7],
      [2 ** 30, 2 ** 30 + 500, 2048],
    ]) {
      const seeds = seedRange(start, end);
      assert.equal(shardCount(seeds, size), splitSeedRange(seeds, size).length, `[${start}, ${end}) / ${size}`);
    }
  });

  test('splitSeedRange aligns shards to the start; the last may be short', () => {
    assert.deepEqual(splitSeedRange(seedRange(0, 2500), 1024), [
      { start: 0, end: 1024 },
      { start: 1024, end: 2048 },
      { start: 2048, end: 2500 },
    ]);
    assert.deepEqual(splitSeedRange(seedRange(100, 104), 2), [
      { start: 100, end: 102 },
      { start: 102, end: 104 },
    ]);
    assert.throws(() => splitSeedRange(seedRange(0, 10), 0), /shardSize must be a positive integer/);
  });
});
