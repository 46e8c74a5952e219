import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeSafetensors, encodeSafetensors } from '../../src/data/safetensors.js';

/** Builds a file from a raw header object and buffer, to forge corrupt inputs. */
function forge(header: unknown, buffer: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + head.length + buffer.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(head.length), true);
  out.set(head, 8);
  out.set(buffer, 8 + head.length);
  return out;
}

describe('safetensors', () => {
  test('exact bytes for a one-tensor file (format layout, padding, little-endian)', () => {
    const bytes = encodeSafetensors({ x: { dtype: 'float32', dims: [2], data: new Float32Array([1, -2]) } });
    const json = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'; // 54 bytes → padded to 56
    assert.equal(new DataView(bytes.buffer).getBigUint64(0, true), 56n);
    assert.equal(new TextDecoder().decode(bytes.subarray(8, 64)), json + '  ');
    assert.deepEqual(Array.from(bytes.subarray(64)), [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
    assert.equal(bytes.length, 72);
  });

  test('round-trips F32, F64, I64 and metadata; encoding is deterministic', () => {
    const tensors = {
      b: { dtype: 'float64' as const, dims: [3], data: new Float64Array([Math.PI, -0, 1e300]) },
      a: { dtype: 'float32' as const, dims: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      c: { dtype: 'int64' as const, dims: [2], data: new BigInt64Array([-5n, 2n ** 62n]) },
      empty: { dtype: 'float32' as const, dims: [0, 3], data: new Float32Array(0) },
    };
    const bytes = encodeSafetensors(tensors, { teacher: 'gmm', note: 'ü' });
    assert.equal((new DataView(bytes.buffer).getBigUint64(0, true) + 8n) % 8n, 0n);
    const { tensors: t, metadata } = decodeSafetensors(bytes, 'rt.safetensors');
    assert.deepEqual(metadata, { note: 'ü', teacher: 'gmm' });
    for (const [k, v] of Object.entries(tensors)) {
      assert.equal(t[k].dtype, v.dtype);
      assert.deepEqual(t[k].dims, v.dims);
      assert.deepEqual(t[k].data, v.data);
    }
    const reordered = encodeSafetensors(
      { c: tensors.c, empty: tensors.empty, a: tensors.a, b: tensors.b },
      { note: 'ü', teacher: 'gmm' },
    );
    assert.deepEqual(reordered, bytes);
  });

  test('decodes tensors at unaligned byte offsets inside a larger buffer', () => {
    const bytes = encodeSafetensors({ x: { dtype: 'float64', dims: [1], data: new Float64Array([2.5]) } });
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    assert.deepEqual(decodeSafetensors(shifted.subarray(3), 's').tensors.x.data, new Float64Array([2.5]));
  });

  test('encode rejects data that disagrees with dtype or dims', () => {
    assert.throws(
      () => encodeSafetensors({ x: { dtype: 'float32', dims: [3], data: new Float32Array(2) } }),
      /'x' dims \[3\] need 3 elements, data has 2/,
    );
    assert.throws(
      () => encodeSafetensors({ x: { dtype: 'float64', dims: [2], data: new Float32Array(2) } }),
      /'x' is float64 but holds a Float32Array/,
    );
  });

  test('detects truncated and corrupt files, naming the source and problem', () => {
    const good = encodeSafetensors({ x: { dtype: 'float32', dims: [2], data: new Float32Array([1, 2]) } });
    const buf8 = new Uint8Array(8);
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, 5), /f\.st: corrupt safetensors file: truncated \(5 bytes/],
      [good.subarray(0, good.length - 1), /data_offsets \[0, 8\) exceed the 7-byte buffer \(file truncated\?\)/],
      [good.subarray(0, 30), /header length 56 exceeds the 22 bytes/],
      [
        forge({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, buf8, 10n ** 12n),
        /header length 1000000000000 exceeds/,
      ],
      [forge({ x: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }, buf8), /tensor 'x' has unknown dtype "F16"/],
      [
        forge({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, buf8),
        /shape \[3\] × 4 bytes = 12, but data_offsets span 8/,
      ],
      [forge({ x: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, buf8), /invalid shape \[-2\]/],
      [forge({ x: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, buf8), /invalid data_offsets \[8,0\]/],
      [
        forge({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, buf8),
        /starts at byte 4, expected 0 \(offsets must be contiguous/,
      ],
      [
        forge(
          {
            x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          buf8,
        ),
        /'y' starts at byte 4, expected 8/,
      ],
      [
        forge({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, buf8),
        /tensors cover 4 bytes but the buffer has 8/,
      ],
      [
        forge({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, buf8),
        /data_offsets \[0, 16\) exceed the 8-byte buffer/,
      ],
      [forge({ __metadata__: { k: 1 } }, new Uint8Array(0)), /metadata 'k' is not a string/],
      [forge([1, 2], new Uint8Array(0)), /header is not a JSON object/],
      [
        (() => {
          const b = good.slice();
          b[9] = 0x7b;
          return b;
        })(),
        /header is not valid UTF-8 JSON/,
      ],
    ];
    for (const [bytes, re] of cases)
      assert.throws(
        () => decodeSafetensors(bytes, 'f.st'),
        (e: Error) => re.test(e.message) && e.message.startsWith('f.st: '),
      );
  });
});
