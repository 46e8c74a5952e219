/**
 * Labelled PNG sample grids (teacher vs student for the same noise) and the reference uint8 conversion.
 *
 * Conversion source: EDM `generate.py` / GET evaluation, `(x * 127.5 + 128).clip(0, 255).to(torch.uint8)`
 * on float32 tensors (get-reference.md "Quantization"); the +128 makes truncation round half up.
 */
import { PNG } from 'pngjs';
import { GLYPH_HEIGHT, type Raster, drawText, textWidth } from './font.js';

/**
 * Images in [−1, 1] → uint8, exactly as the reference: u = trunc(clip(x·127.5 + 128, 0, 255)), with
 * the multiply and the add each rounded to float32 as PyTorch does (so e.g. x = −0.99607843 gives 1, not
 * the 0 that float64 arithmetic would give). −1 → 0, 0 → 128, 1 → 255; NaN → 0.
 * @param x float32 [...] any shape. @returns uint8 of the same length.
 */
export function toUint8(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length);
  const f = Math.fround;
  for (let i = 0; i < x.length; i++) {
    const v = f(f(x[i] * 127.5) + 128);
    out[i] = v > 255 ? 255 : v > 0 ? v : 0; // Uint8Array assignment truncates; NaN fails both tests → 0
  }
  return out;
}

/** One titled panel of the grid: float32 [n, C, H, W] in [−1, 1]. */
export interface GridPanel {
  readonly title: string;
  readonly images: Float32Array;
}

export interface SampleGridOptions {
  /**
   * Panels side by side, all with the same n; default titles used by the pipeline: "teacher (35 NFE)",
   * "student (1 step)".
   */
  readonly panels: readonly GridPanel[];
  /** Per-sample shape; C must be 1 (grey) or 3 (RGB, planar). */
  readonly shape: { readonly channels: number; readonly height: number; readonly width: number };
  /** int32 [n] class of each sample: one row per class, samples in order. Omit for an unlabelled grid. */
  readonly labels?: Int32Array;
  /** Row labels (class names), one per class; required with `labels`. */
  readonly classNames?: readonly string[];
  /** Columns per row; default: the largest class count (labelled) or ⌈√n⌉ (unlabelled). */
  readonly columns?: number;
  /** Integer upscaling of each image (default 2). */
  readonly scale?: number;
  /** Pixels between images (default 2). */
  readonly gap?: number;
}

const WHITE = 255;
const INK: [number, number, number] = [0, 0, 0];
const TEXT_SCALE = 2;
const MARGIN = 6;

/**
 * Lays the grid out and returns PNG bytes: a title above each panel, class names to the left of each
 * row, white background, black text. Missing cells (a class with fewer samples than columns) stay white.
 * @throws Error when panel sizes disagree with n × C × H × W, C is not 1 or 3, labels are out of range,
 *   or scale/gap/columns are not valid integers.
 */
export function renderSampleGrid(opts: SampleGridOptions): { png: Uint8Array; width: number; height: number } {
  const { channels: C, height: H, width: W } = opts.shape;
  const scale = opts.scale ?? 2;
  const gap = opts.gap ?? 2;
  if (C !== 1 && C !== 3) throw new Error(`renderSampleGrid: channels must be 1 or 3, got ${C}`);
  if (!Number.isInteger(scale) || scale < 1 || !Number.isInteger(gap) || gap < 0)
    throw new Error(
      `renderSampleGrid: scale (${scale}) must be a positive integer and gap (${gap}) a non-negative integer`,
    );
  if (opts.panels.length === 0) throw new Error('renderSampleGrid: no panels');
  const per = C * H * W;
  const n = opts.panels[0].images.length / per;
  for (const p of opts.panels) {
    if (p.images.length !== n * per || !Number.isInteger(n))
      throw new Error(
        `renderSampleGrid: panel '${p.title}' has ${p.images.length} values, expected n × ${C}×${H}×${W} ` +
          `with the same n for every panel`,
      );
  }
  // Cells: rows of sample indices.
  let rows: number[][];
  let rowNames: readonly string[] = [];
  if (opts.labels) {
    const names = opts.classNames;
    if (!names) throw new Error('renderSampleGrid: classNames are required with labels');
    if (opts.labels.length !== n) throw new Error(`renderSampleGrid: ${opts.labels.length} labels for ${n} samples`);
    rows = names.map(() => []);
    opts.labels.forEach((y, i) => {
      if (!(y >= 0 && y < names.length))
        throw new Error(`renderSampleGrid: label ${y} of sample ${i} is outside [0, ${names.length})`);
      rows[y].push(i);
    });
    rowNames = names;
  } else {
    const cols = opts.columns ?? Math.max(1, Math.ceil(Math.sqrt(n)));
    rows = [];
    for (let i = 0; i < n; i += cols) rows.push(Array.from({ length: Math.min(cols, n - i) }, (_, k) => i + k));
  }
  const cols = opts.columns ?? Math.max(1, ...rows.map((r) => r.length));
  if (!Number.isInteger(cols) || cols < 1)
    throw new Error(`renderSampleGrid: columns must be a positive integer, got ${cols}`);

  const cellW = W * scale;
  const cellH = H * scale;
  const textH = GLYPH_HEIGHT * TEXT_SCALE;
  const labelW = rowNames.length ? Math.max(...rowNames.map((s) => textWidth(s, TEXT_SCALE))) + MARGIN : 0;
  const panelW = cols * cellW + (cols - 1) * gap;
  const panelGap = 4 * MARGIN;
  const top = MARGIN + textH + MARGIN;
  const width = MARGIN + labelW + opts.panels.length * panelW + (opts.panels.length - 1) * panelGap + MARGIN;
  const height = top + rows.length * cellH + Math.max(0, rows.length - 1) * gap + MARGIN;
  const png = new PNG({ width, height });
  png.data.fill(WHITE);
  const img: Raster = { width, height, data: png.data };
  const u8 = opts.panels.map((p) => toUint8(p.images));

  rows.forEach((row, r) => {
    const y0 = top + r * (cellH + gap);
    if (rowNames.length) drawText(img, MARGIN, y0 + Math.floor((cellH - textH) / 2), rowNames[r], INK, TEXT_SCALE);
    opts.panels.forEach((p, k) => {
      const x0 = MARGIN + labelW + k * (panelW + panelGap);
      if (r === 0)
        drawText(img, x0 + Math.floor((panelW - textWidth(p.title, TEXT_SCALE)) / 2), MARGIN, p.title, INK, TEXT_SCALE);
      row.slice(0, cols).forEach((i, c) => blit(img, u8[k], i * per, C, H, W, x0 + c * (cellW + gap), y0, scale));
    });
  });
  return { png: new Uint8Array(PNG.sync.write(png)), width, height };
}

/**
 * One image as PNG bytes: 8-bit grey (C = 1) or RGB (C = 3), pixels converted with {@link toUint8},
 * each pixel drawn as a scale × scale block (nearest-neighbour upscaling, so browsers show small images
 * sharp). Deterministic: the same floats give the same bytes.
 * @param image float32 [C, H, W], planar, in [−1, 1] (one sample of the model's `image` output).
 * @throws Error when image.length ≠ C·H·W, C is not 1 or 3, or scale is not a positive integer.
 */
export function encodeImagePng(
  image: Float32Array,
  shape: { readonly channels: number; readonly height: number; readonly width: number },
  scale = 1,
): Uint8Array {
  const { channels: C, height: H, width: W } = shape;
  if (C !== 1 && C !== 3) throw new Error(`encodeImagePng: channels must be 1 or 3, got ${C}`);
  if (image.length !== C * H * W) throw new Error(`encodeImagePng: ${image.length} values, expected ${C}×${H}×${W}`);
  if (!Number.isInteger(scale) || scale < 1)
    throw new Error(`encodeImagePng: scale must be a positive integer, got ${scale}`);
  const png = new PNG({ width: W * scale, height: H * scale });
  blit({ width: W * scale, height: H * scale, data: png.data }, toUint8(image), 0, C, H, W, 0, 0, scale);
  return new Uint8Array(PNG.sync.write(png, { colorType: C === 1 ? 0 : 2 }));
}

/** Copies one uint8 [C, H, W] image at `off`, upscaled by `scale`, with its top-left at (x0, y0). */
function blit(
  img: Raster,
  u8: Uint8Array,
  off: number,
  C: number,
  H: number,
  W: number,
  x0: number,
  y0: number,
  scale: number,
): void {
  for (let y = 0; y < H * scale; y++) {
    for (let x = 0; x < W * scale; x++) {
      const s = off + Math.floor(y / scale) * W + Math.floor(x / scale);
      const o = ((y0 + y) * img.width + x0 + x) * 4;
      img.data[o] = u8[s];
      img.data[o + 1] = C === 3 ? u8[s + H * W] : u8[s];
      img.data[o + 2] = C === 3 ? u8[s + 2 * H * W] : u8[s];
      img.data[o + 3] = 255;
    }
  }
}

/** The panel titles the pipeline uses for teacher/student comparisons. */
export const TEACHER_TITLE = 'teacher (35 NFE)';
export const STUDENT_TITLE = 'student (1 step)';
