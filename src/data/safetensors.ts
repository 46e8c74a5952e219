/**
 * The safetensors file format (huggingface/safetensors, README "Format"), read and written in memory:
 *
 *   [u64 little-endian N][N bytes of UTF-8 JSON header, space-padded][byte buffer]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end)} (offsets relative to the
 * start of the byte buffer), plus an optional "__metadata__" map of string → string. Tensors are
 * row-major, little-endian. Used for pair shards and checkpoints.
 *
 * Encoding is deterministic (tensors in name order, header keys in a fixed order, header padded with
 * spaces so the buffer starts 8-byte aligned), so equal content gives byte-identical files.
 */
import type { DType, TensorArray, TensorData } from '../graph/ir.js';

/** safetensors dtype tag ↔ IR dtype, with element size in bytes. */
const TAGS = {
  float32: { tag: 'F32', size: 4 },
  float64: { tag: 'F64', size: 8 },
  int64: { tag: 'I64', size: 8 },
  bool: { tag: 'BOOL', size: 1 },
} as const satisfies Record<DType, { tag: string; size: number }>;

const FROM_TAG: Record<string, DType> = { F32: 'float32', F64: 'float64', I64: 'int64', BOOL: 'bool' };

/** Largest header accepted when reading (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** A decoded file: tensors by name and the string metadata ({} when absent). */
export interface Safetensors {
  readonly tensors: Record<string, TensorData>;
  readonly metadata: Record<string, string>;
}

function expectedArray(dtype: DType, data: TensorArray): boolean {
  switch (dtype) {
    case 'float32':
      return data instanceof Float32Array;
    case 'float64':
      return data instanceof Float64Array;
    case 'int64':
      return data instanceof BigInt64Array;
    case 'bool':
      return data instanceof Uint8Array;
  }
}

const numelOf = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/**
 * Serialises tensors (float32 → F32, float64 → F64, int64 → I64, bool → BOOL) and string metadata.
 * @throws Error naming the tensor when its data array type or length disagrees with dtype × dims, or
 *   a name is empty or "__metadata__".
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorData>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const meta: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort()) {
      if (typeof metadata[k] !== 'string') throw new Error(`encodeSafetensors: metadata '${k}' must be a string`);
      meta[k] = metadata[k];
    }
    header.__metadata__ = meta;
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (name === '' || name === '__metadata__') throw new Error(`encodeSafetensors: invalid tensor name '${name}'`);
    const spec = TAGS[t.dtype];
    if (!spec) throw new Error(`encodeSafetensors: tensor '${name}' has unsupported dtype ${String(t.dtype)}`);
    if (!expectedArray(t.dtype, t.data))
      throw new Error(`encodeSafetensors: tensor '${name}' is ${t.dtype} but holds a ${t.data.constructor.name}`);
    if (!t.dims.every((d) => Number.isInteger(d) && d >= 0))
      throw new Error(`encodeSafetensors: tensor '${name}' has invalid dims [${t.dims.join(',')}]`);
    if (numelOf(t.dims) !== t.data.length) {
      throw new Error(
        `encodeSafetensors: tensor '${name}' dims [${t.dims.join(',')}] ` +
          `need ${numelOf(t.dims)} elements, data has ${t.data.length}`,
      );
    }
    const bytes = t.data.length * spec.size;
    header[name] = { dtype: spec.tag, shape: [...t.dims], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonLen = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonLen % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const name of names) {
    const d = tensors[name].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}

/**
 * Parses and validates a safetensors file. Tensor data is copied into fresh, aligned typed arrays.
 * @param source the file or URI, named in every error.
 * @throws Error `<source>: <problem>` when the file is truncated, the header length exceeds the file,
 *   the header is not a JSON object, a dtype is unknown, a shape is invalid, shape × itemsize differs
 *   from the byte length, offsets are out of range, overlapping or leave holes, or metadata values are
 *   not strings.
 */
export function decodeSafetensors(bytes: Uint8Array, source: string): Safetensors {
  function bad(msg: string): never {
    throw new Error(`${source}: corrupt safetensors file: ${msg}`);
  }
  if (bytes.length < 8) bad(`truncated (${bytes.length} bytes, need at least 8 for the header length)`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8))
    bad(`header length ${n} exceeds the ${bytes.length - 8} bytes after the length field (file truncated?)`);
  if (n > BigInt(MAX_HEADER_BYTES)) bad(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    bad(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const bufferLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: DType; dims: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') bad(`metadata '${k}' is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) bad(`tensor '${name}' entry is not an object`);
    const dtype = FROM_TAG[String(e.dtype)];
    if (!dtype)
      bad(`tensor '${name}' has unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(FROM_TAG).join(', ')})`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      bad(`tensor '${name}' has invalid shape ${JSON.stringify(shape)}`);
    const off = e.data_offsets as number[];
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      off[1] < off[0]
    ) {
      bad(`tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as number[];
    const dims = shape as number[];
    const want = numelOf(dims) * TAGS[dtype].size;
    if (end - begin !== want)
      bad(
        `tensor '${name}' shape [${dims.join(',')}] × ${TAGS[dtype].size} ` +
          `bytes = ${want}, but data_offsets span ${end - begin}`,
      );
    if (end > bufferLen)
      bad(`tensor '${name}' data_offsets [${begin}, ${end}) exceed the ${bufferLen}-byte buffer (file truncated?)`);
    entries.push({ name, dtype, dims, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expect = 0;
  for (const e of entries) {
    if (e.begin !== expect)
      bad(
        `tensor '${e.name}' starts at byte ${e.begin}, expected ` +
          `${expect} (offsets must be contiguous, no holes or overlaps)`,
      );
    expect = e.end;
  }
  if (expect !== bufferLen)
    bad(`tensors cover ${expect} bytes but the buffer has ${bufferLen} (trailing bytes or truncation)`);
  const tensors: Record<string, TensorData> = {};
  for (const e of entries) {
    // Copy into a fresh, aligned buffer (a Node Buffer's slice() is a view into a shared pool).
    const copy = new Uint8Array(bytes.subarray(dataStart + e.begin, dataStart + e.end)).buffer;
    const data: TensorArray =
      e.dtype === 'float32'
        ? new Float32Array(copy)
        : e.dtype === 'float64'
          ? new Float64Array(copy)
          : e.dtype === 'int64'
            ? new BigInt64Array(copy)
            : new Uint8Array(copy);
    tensors[e.name] = { dtype: e.dtype, dims: e.dims, data };
  }
  return { tensors, metadata };
}
