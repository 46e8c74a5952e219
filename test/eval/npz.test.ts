import assert from 'node:assert/strict';
import { test } from 'node:test';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { decodeFidStats, decodeNpy, decodeNpz, encodeFidStats, encodeNpy, encodeNpz } from '../../src/eval/npz.js';
import { UsageError } from '../../src/util/errors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const cat = (...parts: (Uint8Array | string)[]): Uint8Array =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

/** A .npy built by hand from the NPY v1.0 spec: magic, version 1.0, uint16 LE header length, dict, padding. */
function handNpy(dict: string, spaces: number, data: Uint8Array): Uint8Array {
  const header = `${dict}${' '.repeat(spaces)}\n`;
  return cat('\x93NUMPY\x01\x00', new Uint8Array([header.length & 0xff, header.length >> 8]), header, data);
}

// np.array([1.0, 2.0]): dict (57 chars) + 20 growth spaces (21 − len('2')) + 40 alignment spaces + '\n' = 118,
// so the data starts at byte 10 + 118 = 128; 1.0 = 0x3ff0000000000000, 2.0 = 0x4000000000000000 (LE).
const ONE_TWO = handNpy(
  "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
  60,
  Buffer.from('000000000000f03f0000000000000040', 'hex'),
);

test('encodeNpy is byte-exact with the spec for np.array([1.0, 2.0])', () => {
  const got = encodeNpy({ dtype: 'float64', shape: [2], data: new Float64Array([1, 2]) });
  assert.equal(ONE_TWO.length, 144);
  assert.equal(hex(got), hex(ONE_TWO));
});

test('encodeNpy: 2-D float32 header uses Python tuple repr and 64-byte alignment', () => {
  // (2, 3) <f4: dict 59 chars + 20 growth + 38 alignment spaces + '\n' = 118 → data at 128.
  const want = handNpy(
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
    58,
    new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer),
  );
  const got = encodeNpy({ dtype: 'float32', shape: [2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) });
  assert.equal(hex(got), hex(want));
  assert.equal((10 + got[8] + (got[9] << 8)) % 64, 0);
});

test('decodeNpy reads the hand-built bytes back', () => {
  const a = decodeNpy(ONE_TWO, 'x.npy');
  assert.equal(a.dtype, 'float64');
  assert.deepEqual(a.shape, [2]);
  assert.deepEqual([...a.data], [1, 2]);
});

test('npz round trip: stored members named <key>.npy, float32 and float64', () => {
  const bytes = encodeNpz({
    a: { dtype: 'float64', shape: [2, 2], data: new Float64Array([1, -2.5, 3e-300, Math.PI]) },
    b: { dtype: 'float32', shape: [3], data: new Float32Array([0.5, -1, 7]) },
  });
  assert.deepEqual(Object.keys(unzipSync(bytes)).sort(), ['a.npy', 'b.npy']);
  const back = decodeNpz(bytes, 'mem.npz');
  assert.deepEqual(back.a.shape, [2, 2]);
  assert.deepEqual([...back.a.data], [1, -2.5, 3e-300, Math.PI]);
  assert.equal(back.b.dtype, 'float32');
  assert.deepEqual([...back.b.data], [0.5, -1, 7]);
  // Stored, not deflated (like np.savez): the raw .npy bytes appear verbatim in the archive.
  assert.ok(
    Buffer.from(bytes).includes(
      Buffer.from(encodeNpy({ dtype: 'float32', shape: [3], data: new Float32Array([0.5, -1, 7]) })),
    ),
  );
});

test('FID stats round trip, and deflated members are read', () => {
  const stats = { mu: new Float64Array([0.25, -1]), sigma: new Float64Array([2, 0.5, 0.5, 1]) };
  const back = decodeFidStats(encodeFidStats(stats), 'mem.npz');
  assert.deepEqual([...back.mu], [0.25, -1]);
  assert.deepEqual([...back.sigma], [2, 0.5, 0.5, 1]);
  const deflated = zipSync(
    {
      'mu.npy': encodeNpy({ dtype: 'float32', shape: [2], data: new Float32Array([0.25, -1]) }),
      'sigma.npy': encodeNpy({ dtype: 'float64', shape: [2, 2], data: stats.sigma }),
    },
    { level: 9 },
  );
  const d = decodeFidStats(deflated, 'c.npz');
  assert.ok(d.mu instanceof Float64Array);
  assert.deepEqual([...d.mu], [0.25, -1]);
});

// Written by NumPy 2.4.6: np.savez / np.savez_compressed('…', mu=np.array([1.0, 2.0]),
// sigma=np.array([[2.0, 0.5], [0.5, 1.0]])). NumPy writes zip64 extra fields (force_zip64).
const NUMPY_SAVEZ =
  'UEsDBC0AAAAAAAAAIQBkW6q///////////8GABQAbXUubnB5AQAQAJAAAAAAAAAAkAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8Zj' +
  'gnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg' +
  'ICAgICAgICAgICAgICAgICAgICAgICAgCgAAAAAAAPA/AAAAAAAAAEBQSwMELQAAAAAAAAAhAC/hIRX//////////wkAFABzaWdtYS5ucH' +
  'kBABAAoAAAAAAAAACgAAAAAAAAAJNOVU1QWQEAdgB7J2Rlc2NyJzogJzxmOCcsICdmb3J0cmFuX29yZGVyJzogRmFsc2UsICdzaGFwZSc6' +
  'ICgyLCAyKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAKAAAAAAAAAEAAAA' +
  'AAAADgPwAAAAAAAOA/AAAAAAAA8D9QSwECLQMtAAAAAAAAACEAZFuqv5AAAACQAAAABgAAAAAAAAAAAAAAgAEAAAAAbXUubnB5UEsBAi0D' +
  'LQAAAAAAAAAhAC/hIRWgAAAAoAAAAAkAAAAAAAAAAAAAAIAByAAAAHNpZ21hLm5weVBLBQYAAAAAAgACAGsAAACjAQAAAAA=';
const NUMPY_SAVEZ_COMPRESSED =
  'UEsDBC0AAAAIAAAAIQBkW6q///////////8GABQAbXUubnB5AQAQAJAAAAAAAAAATAAAAAAAAACb7BfqGxDJyFDGUK2eklqcXKRupaBuk2' +
  'ahrqOgnpZfVFKUmBefX5SSChJ3S8wpTgWKF2ckFqQC+RpGOpo6CrUKFAAuBjD4YA+hGRwAUEsDBC0AAAAIAAAAIQAv4SEV//////////8J' +
  'ABQAc2lnbWEubnB5AQAQAKAAAAAAAAAAUQAAAAAAAACb7BfqGxDJyFDGUK2eklqcXKRupaBuk2ahrqOgnpZfVFKUmBefX5SSChJ3S8wpTg' +
  'WKF2ckFqQC+RpGOgpGmjoKtQpkAy4GCHCAUA/sUekP9gBQSwECLQMtAAAACAAAACEAZFuqv0wAAACQAAAABgAAAAAAAAAAAAAAgAEAAAAA' +
  'bXUubnB5UEsBAi0DLQAAAAgAAAAhAC/hIRVRAAAAoAAAAAkAAAAAAAAAAAAAAIABhAAAAHNpZ21hLm5weVBLBQYAAAAAAgACAGsAAAAQAQ' +
  'AAAAA=';

test('reads archives written by numpy.savez and numpy.savez_compressed', () => {
  for (const b64 of [NUMPY_SAVEZ, NUMPY_SAVEZ_COMPRESSED]) {
    const s = decodeFidStats(Buffer.from(b64, 'base64'), 'numpy.npz');
    assert.deepEqual([...s.mu], [1, 2]);
    assert.deepEqual([...s.sigma], [2, 0.5, 0.5, 1]);
  }
  // numpy's mu.npy member is byte-identical to ours.
  const mu = unzipSync(Buffer.from(NUMPY_SAVEZ, 'base64'))['mu.npy'];
  assert.equal(hex(mu), hex(ONE_TWO));
});

const header = (dict: string): Uint8Array => handNpy(dict, 64 - ((10 + dict.length + 1) % 64), new Uint8Array(16));

test('decodeNpy rejects unsupported layouts with clear errors', () => {
  const cases: [Uint8Array, RegExp][] = [
    [
      header("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }"),
      /^s\.npz:m\.npy: unsupported dtype '>f8' \(supported: '<f8', '<f4'/,
    ],
    [header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"), /unsupported dtype '\|O'/],
    [header("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }"), /unsupported dtype in header/],
    [
      header("{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }"),
      /fortran_order is True; re-save it in C order/,
    ],
    [
      header("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"),
      /has 16 data bytes, expected 24 for shape \(3,\) <f8/,
    ],
    [strToU8('PK not numpy at all'), /not a \.npy array \(bad magic/],
  ];
  for (const [bytes, re] of cases)
    assert.throws(
      () => decodeNpy(bytes, 's.npz:m.npy'),
      (e: Error) => e instanceof UsageError && re.test(e.message),
    );
});

test('decodeFidStats errors name the source and the problem', () => {
  const arr = (shape: number[]) => ({
    dtype: 'float64' as const,
    shape,
    data: new Float64Array(shape.reduce((a, b) => a * b, 1)),
  });
  const src = 's3://bucket/ref/stats.npz';
  assert.throws(() => decodeFidStats(encodeNpz({ mu: arr([3]), sigma: arr([3, 4]) }), src), {
    name: 'UsageError',
    message: 's3://bucket/ref/stats.npz: sigma has shape (3, 4), expected (3, 3) for mu of length 3',
  });
  assert.throws(() => decodeFidStats(encodeNpz({ mu: arr([3, 1]), sigma: arr([3, 3]) }), src), {
    message: 's3://bucket/ref/stats.npz: mu has shape (3, 1), expected a 1-D vector',
  });
  assert.throws(() => decodeFidStats(encodeNpz({ mu: arr([3]) }), src), {
    message:
      "s3://bucket/ref/stats.npz: FID statistics need arrays 'mu' and 'sigma' (found: mu); write them with numpy.savez(path, mu=mu, sigma=sigma)",
  });
  assert.throws(
    () => decodeFidStats(strToU8('hello'), src),
    (e: Error) => e instanceof UsageError && e.message.startsWith(`${src}: not a readable .npz (zip) archive`),
  );
});

test('a flipped byte inside a member fails its CRC-32 check, as numpy.load does', () => {
  const bytes = encodeFidStats({ mu: Float64Array.of(1, 2), sigma: Float64Array.of(1, 0, 0, 1) });
  const bad = bytes.slice();
  const at = bytes.length - 200; // inside sigma.npy's data, before the central directory
  bad[at] ^= 0x01;
  assert.throws(() => decodeFidStats(bad, 'stats.npz'), /stats.npz: member (mu|sigma).npy fails its CRC-32 check/);
  assert.deepEqual([...decodeFidStats(bytes, 'stats.npz').mu], [1, 2]);
});
