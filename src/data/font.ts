/**
 * A tiny 5×7 bitmap font for labelling sample grids (A–Z, a–z, 0–9, space and ( ) - / . : _ + , = ?).
 * Glyph shapes follow the common 5×7 dot-matrix LCD style. Each glyph is 7 rows of 5 bits written as
 * 14 hex digits (two per row, bit 4 = leftmost column). Unknown characters draw as '?'.
 */

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character in font pixels (glyph + 1 column of spacing). */
export const GLYPH_ADVANCE = GLYPH_WIDTH + 1;

// prettier-ignore
const GLYPHS: Readonly<Record<string, string>> = {
  A: '0e1111111f1111', B: '1e11111e11111e', C: '0e11101010110e', D: '1c12111111121c', E: '1f10101e10101f',
  F: '1f10101e101010', G: '0e11101711110f', H: '1111111f111111', I: '0e04040404040e', J: '0702020202120c',
  K: '11121418141211', L: '1010101010101f', M: '111b1515111111', N: '11111915131111', O: '0e11111111110e',
  P: '1e11111e101010', Q: '0e11111115120d', R: '1e11111e141211', S: '0f10100e01011e', T: '1f040404040404',
  U: '1111111111110e', V: '11111111110a04', W: '1111111515150a', X: '11110a040a1111', Y: '1111110a040404',
  Z: '1f01020408101f',
  a: '00000e010f110f', b: '1010161911111e', c: '00000e1010110e', d: '01010d1311110f', e: '00000e111f100e',
  f: '0609081c080808', g: '000f11110f010e', h: '10101619111111', i: '04000c0404040e', j: '0200060202120c',
  k: '10101214181412', l: '0c04040404040e', m: '00001a15151111', n: '00001619111111', o: '00000e1111110e',
  p: '00001e111e1010', q: '00000d130f0101', r: '00001619101010', s: '00000e100e011e', t: '08081c08080906',
  u: '0000111111130d', v: '00001111110a04', w: '0000111115150a', x: '0000110a040a11', y: '000011110f010e',
  z: '00001f0204081f',
  '0': '0e11131519110e', '1': '040c040404040e', '2': '0e11010204081f', '3': '1f02040201110e', '4': '02060a121f0202',
  '5': '1f101e0101110e', '6': '0608101e11110e', '7': '1f010204080808', '8': '0e11110e11110e', '9': '0e11110f01020c',
  ' ': '00000000000000', '(': '02040808080402', ')': '08040202020408', '-': '0000001f000000', '/': '00010204081000',
  '.': '00000000000c0c', ':': '000c0c000c0c00', '_': '0000000000001f', '+': '0004041f040400', ',': '000000000c0408',
  '=': '00001f001f0000', '?': '0e110102040004',
};

/** The 7 row bitmasks of a character (bit 4 = leftmost column); '?' for characters the font lacks. */
export function glyphRows(ch: string): readonly number[] {
  const hex = GLYPHS[ch] ?? GLYPHS['?'];
  const rows: number[] = [];
  for (let r = 0; r < GLYPH_HEIGHT; r++) rows.push(parseInt(hex.slice(2 * r, 2 * r + 2), 16));
  return rows;
}

/** Width in output pixels of `text` drawn at integer `scale` (no trailing spacing column). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

/** An RGBA8 raster, row-major, 4 bytes per pixel (the layout of pngjs's `PNG.data`). */
export interface Raster {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/**
 * Draws `text` with its top-left corner at (x, y), each font pixel as a scale×scale block of `rgb`.
 * Pixels outside the raster are clipped.
 */
export function drawText(
  img: Raster,
  x: number,
  y: number,
  text: string,
  rgb: readonly [number, number, number],
  scale = 1,
): void {
  for (let k = 0; k < text.length; k++) {
    const rows = glyphRows(text[k]);
    const gx = x + k * GLYPH_ADVANCE * scale;
    for (let r = 0; r < GLYPH_HEIGHT; r++) {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (!((rows[r] >> (GLYPH_WIDTH - 1 - c)) & 1)) continue;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const px = gx + c * scale + dx;
            const py = y + r * scale + dy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
            const o = (py * img.width + px) * 4;
            img.data[o] = rgb[0];
            img.data[o + 1] = rgb[1];
            img.data[o + 2] = rgb[2];
            img.data[o + 3] = 255;
          }
        }
      }
    }
  }
}
