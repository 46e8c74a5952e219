/**
 * NumPy `.npy` / `.npz` archives, for FID reference statistics in the format pytorch-fid and
 * pytorch-gan-metrics use: `np.savez(path, mu=mu, sigma=sigma)`, i.e. a zip holding `mu.npy` (float64 [d])
 * and `sigma.npy` (float64 [d, d]).
 *
 * Format: NumPy's `.npy` spec (numpy/lib/format.py, "NPY format" docs): magic `\x93NUMPY`, version byte pair,
 * little-endian header length (uint16 for v1.0, uint32 for v2.0/3.0), then an ASCII Python-dict literal
 * `{'descr': '<f8', 'fortran_order': False, 'shape': (d,), }` padded with spaces and a final `\n` so that the
 * data starts at a multiple of 64 bytes; the data follows in C order. We write v1.0 exactly as NumPy ≥ 1.23
 * does (including its 21-digit growth padding after the dict); we read v1.0–3.0, dtypes `<f8` and `<f4`.
 * The zip is written uncompressed (like `np.savez`); deflated members (`np.savez_compressed`) are read too.
 */
import { crc32 } from 'node:zlib';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { UsageError } from '../util/errors.js';
import type { FidStats } from './fid.js';

/** One array of an archive: row-major (C-order) data with its shape. */
export interface NpyArray {
  readonly dtype: 'float64' | 'float32';
  readonly shape: readonly number[];
  readonly data: Float64Array | Float32Array;
}

export type { FidStats };

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64; // numpy.lib.format.ARRAY_ALIGN
const GROWTH_AXIS_MAX_DIGITS = 21; // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS
const DESCR = { float64: '<f8', float32: '<f4' } as const;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('npz: a little-endian host is required');

/** Python's repr of a shape tuple: `()`, `(2,)`, `(3, 4)`. */
const shapeRepr = (shape: readonly number[]): string =>
  shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;

/**
 * The `.npy` v1.0 bytes of one array, byte-identical to `np.save` (NumPy ≥ 1.23, C order, little-endian).
 * @throws RangeError when data.length is not the product of the shape, or the header exceeds v1.0's 64 KiB.
 */
export function encodeNpy(a: NpyArray): Uint8Array {
  const count = a.shape.reduce((p, d) => p * d, 1);
  if (a.data.length !== count)
    throw new RangeError(`encodeNpy: ${a.data.length} values do not fill shape ${shapeRepr(a.shape)}`);
  let dict = `{'descr': '${DESCR[a.dtype]}', 'fortran_order': False, 'shape': ${shapeRepr(a.shape)}, }`;
  if (a.shape.length > 0) dict += ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(a.shape[0]).length);
  const hlen = dict.length + 1; // + '\n'
  const pad = ALIGN - ((MAGIC.length + 2 + 2 + hlen) % ALIGN);
  const header = dict + ' '.repeat(pad) + '\n';
  if (header.length > 0xffff)
    throw new RangeError(`encodeNpy: header of ${header.length} bytes is too long for .npy v1.0`);
  const out = new Uint8Array(10 + header.length + a.data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1; // version 1.0
  out[7] = 0;
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  out.set(strToU8(header), 10);
  out.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), 10 + header.length);
  return out;
}

/**
 * Parses one `.npy` file (versions 1.0, 2.0, 3.0; dtypes `<f8`, `<f4`; C order).
 * @param where names the file in errors, e.g. `stats.npz:mu.npy`.
 * @throws UsageError for a bad magic, a truncated file, an unsupported dtype (big-endian, object, structured,
 *   integer …), `fortran_order: True`, or a data size that does not match the shape.
 */
export function decodeNpy(bytes: Uint8Array, where: string): NpyArray {
  const bad = (why: string): never => {
    throw new UsageError(`${where}: ${why}`);
  };
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m))
    bad('not a .npy array (bad magic; expected \\x93NUMPY)');
  const major = bytes[6];
  if (major < 1 || major > 3) bad(`unsupported .npy version ${major}.${bytes[7]} (supported: 1.0–3.0)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + lenBytes + hlen;
  if (start > bytes.length) bad('truncated .npy header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(8 + lenBytes, start));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined)
    bad(`unsupported dtype in header ${header.trim()} (supported: '<f8', '<f4'; re-save with arr.astype('<f8'))`);
  if (fortran === undefined || shapeStr === undefined) bad(`malformed .npy header ${header.trim()}`);
  if (fortran === 'True') bad('fortran_order is True; re-save it in C order (np.ascontiguousarray)');
  const dtype =
    descr === '<f8'
      ? 'float64'
      : descr === '<f4'
        ? 'float32'
        : bad(`unsupported dtype '${descr}' (supported: '<f8', '<f4'; re-save with arr.astype('<f8'))`);
  const shape = shapeStr!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => (/^\d+$/.test(s) ? Number(s) : bad(`malformed shape (${shapeStr})`)));
  const count = shape.reduce((p, d) => p * d, 1);
  const width = dtype === 'float64' ? 8 : 4;
  if (bytes.length - start !== count * width)
    bad(`has ${bytes.length - start} data bytes, expected ${count * width} for shape ${shapeRepr(shape)} ${descr}`);
  const copy = new Uint8Array(bytes.length - start); // own, aligned buffer (a Node Buffer's slice() would share)
  copy.set(bytes.subarray(start));
  return { dtype, shape, data: dtype === 'float64' ? new Float64Array(copy.buffer) : new Float32Array(copy.buffer) };
}

/**
 * A `.npz` archive (an uncompressed zip, like `np.savez`) holding `<name>.npy` for every entry.
 * @throws RangeError as encodeNpy does.
 */
export function encodeNpz(arrays: Readonly<Record<string, NpyArray>>): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  for (const [name, a] of Object.entries(arrays)) files[`${name}.npy`] = encodeNpy(a);
  // Stored (level 0) like np.savez; a fixed DOS timestamp keeps the bytes reproducible.
  return zipSync(files, { level: 0, mtime: new Date(1980, 0, 1) });
}

/**
 * Reads every `<name>.npy` member of a `.npz` archive (stored or deflated), keyed by name without `.npy`.
 * @param source the archive's URI, named in errors.
 * @throws UsageError when the bytes are not a zip, a member is not a supported `.npy`, or the archive is empty.
 */
export function decodeNpz(bytes: Uint8Array, source: string): Record<string, NpyArray> {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    throw new UsageError(
      `${source}: not a readable .npz (zip) archive (${(e as Error).message}); write it with numpy.savez`,
    );
  }
  // fflate does not check CRC-32s; NumPy (zipfile) does, so a flipped byte must not pass here either.
  const crcs = centralCrcs(bytes);
  for (const [name, data] of Object.entries(files)) {
    const want = crcs.get(name);
    if (want !== undefined && crc32(data) !== want)
      throw new UsageError(
        `${source}: member ${name} fails its CRC-32 check (the file is corrupt); recompute it with ` +
          `--save-reference or numpy.savez`,
      );
  }
  const out: Record<string, NpyArray> = {};
  for (const [name, data] of Object.entries(files)) {
    if (name.endsWith('.npy')) out[name.slice(0, -4)] = decodeNpy(data, `${source}:${name}`);
  }
  if (Object.keys(out).length === 0) throw new UsageError(`${source}: the .npz archive holds no .npy arrays`);
  return out;
}

/**
 * Member name → CRC-32 from the zip's central directory (PKWARE APPNOTE 4.3.12: signature 0x02014b50,
 * CRC at +16, name length at +28, extra at +30, comment at +32, name at +46). Empty when there is
 * no end-of-central-directory record (unzipSync has rejected such bytes already).
 */
function centralCrcs(bytes: Uint8Array): Map<string, number> {
  const out = new Map<string, number>();
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65_535); i--) {
    if (v.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return out;
  const count = v.getUint16(eocd + 10, true);
  let at = v.getUint32(eocd + 16, true);
  for (let k = 0; k < count && at + 46 <= bytes.length && v.getUint32(at, true) === 0x02014b50; k++) {
    const nameLen = v.getUint16(at + 28, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLen));
    out.set(name, v.getUint32(at + 16, true));
    at += 46 + nameLen + v.getUint16(at + 30, true) + v.getUint16(at + 32, true);
  }
  return out;
}

/** `stats.npz` bytes as `np.savez(path, mu=mu, sigma=sigma)` writes them (float64, uncompressed). */
export function encodeFidStats(stats: FidStats): Uint8Array {
  const d = stats.mu.length;
  if (stats.sigma.length !== d * d)
    throw new RangeError(`encodeFidStats: sigma has ${stats.sigma.length} values, expected ${d}×${d}`);
  return encodeNpz({
    mu: { dtype: 'float64', shape: [d], data: stats.mu },
    sigma: { dtype: 'float64', shape: [d, d], data: stats.sigma },
  });
}

/**
 * Reads FID reference statistics (pytorch-fid / pytorch-gan-metrics `.npz`: arrays `mu` [d] and `sigma` [d, d],
 * float64 or float32; returned as float64). Extra arrays are ignored.
 * @throws UsageError naming `source` when mu or sigma is missing or the shapes disagree, e.g.
 *   `…/stats.npz: sigma has shape (3, 4), expected (3, 3) for mu of length 3`.
 */
export function decodeFidStats(bytes: Uint8Array, source: string): FidStats {
  const arrays = decodeNpz(bytes, source);
  const { mu, sigma } = arrays;
  const have = Object.keys(arrays).join(', ');
  if (!mu || !sigma)
    throw new UsageError(
      `${source}: FID statistics need arrays 'mu' and 'sigma' (found: ${have}); write them with ` +
        `numpy.savez(path, mu=mu, sigma=sigma)`,
    );
  if (mu.shape.length !== 1)
    throw new UsageError(`${source}: mu has shape ${shapeRepr(mu.shape)}, expected a 1-D vector`);
  const d = mu.shape[0];
  if (sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new UsageError(
      `${source}: sigma has shape ${shapeRepr(sigma.shape)}, expected (${d}, ${d}) for mu of length ${d}`,
    );
  }
  return { mu: Float64Array.from(mu.data), sigma: Float64Array.from(sigma.data) };
}
