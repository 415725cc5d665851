/**
 * A PNG chart of the loss terms over the steps (written beside metrics.jsonl): the total and
 * SigLIP losses in the top panel, the prior and posterior box losses in the bottom one, with
 * axis labels from a built-in 5x7 bitmap font. No dependency beyond the PNG encoder.
 *
 * @module
 */

import { join } from "node:path";
import { encodePng } from "../data/formats/png.ts";
import { writeFileAtomic } from "../checkpoint/atomic.ts";
import type { JsonLines, StepRecord } from "./progress.ts";

/** One series: a label, an RGB colour and (step, value) points. */
export interface Series {
  /** Legend label. */
  label: string;
  /** Line colour. */
  color: [number, number, number];
  /** Points. */
  points: [number, number][];
}

// 5x7 glyphs, one string of 7 rows of 5 bits per character.
const GLYPHS: Record<string, string> = {
  "0": "01110100011001110101110011000101110",
  "1": "00100011000010000100001000010001110",
  "2": "01110100010000100010001000100011111",
  "3": "11111000100010000010000011000101110",
  "4": "00010001100101010010111110001000010",
  "5": "11111100001111000001000011000101110",
  "6": "00110010001000011110100011000101110",
  "7": "11111000010001000100010000100001000",
  "8": "01110100011000101110100011000101110",
  "9": "01110100011000101111000010001001100",
  ".": "00000000000000000000000000110001100",
  "-": "00000000000000011111000000000000000",
  "+": "00000001000010011111001000010000000",
  " ": "00000000000000000000000000000000000",
  ":": "00000011000110000000011000110000000",
  "/": "00000000010001000100010001000000000",
  "(": "00010001000100001000010000010000010",
  ")": "01000001000001000010000100010001000",
  a: "00000000000111000001011111000101111",
  b: "10000100001011011001100011000111110",
  c: "00000000000111010000100001000101110",
  d: "00001000010110110011100011000101111",
  e: "00000000000111010001111111000001110",
  f: "00110010010100011100010000100001000",
  g: "00000011111000110001011110000101110",
  h: "10000100001011011001100011000110001",
  i: "00100000000110000100001000010001110",
  k: "10000100001001010100110001010010010",
  l: "01100001000010000100001000010001110",
  m: "00000000001101010101101011000110001",
  n: "00000000001011011001100011000110001",
  o: "00000000000111010001100011000101110",
  p: "00000000001111010001111101000010000",
  r: "00000000001011011001100001000010000",
  s: "00000000000111010000011100000111110",
  t: "01000010001110001000010000100100110",
  u: "00000000001000110001100011001101101",
  v: "00000000001000110001100010101000100",
  w: "00000000001000110001101011010101010",
  x: "00000000001000101010001000101010001",
  y: "00000000001000110001011110000101110",
  z: "00000000001111100010001000100011111",
};

class Canvas {
  readonly rgb: Uint8Array;
  constructor(readonly w: number, readonly h: number) {
    this.rgb = new Uint8Array(w * h * 3).fill(255);
  }
  set(x: number, y: number, c: readonly number[]): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const i = (y * this.w + x) * 3;
    this.rgb[i] = c[0]!;
    this.rgb[i + 1] = c[1]!;
    this.rgb[i + 2] = c[2]!;
  }
  line(x0: number, y0: number, x1: number, y1: number, c: readonly number[]): void {
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let i = 0; i <= n; i++) this.set(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, c);
  }
  rect(x: number, y: number, w: number, h: number, c: readonly number[]): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }
  text(x: number, y: number, s: string, c: readonly number[]): void {
    for (const ch of s.toLowerCase()) {
      const g = GLYPHS[ch] ?? GLYPHS[" "]!;
      for (let r = 0; r < 7; r++) {
        for (let q = 0; q < 5; q++) if (g[r * 5 + q] === "1") this.set(x + q, y + r, c);
      }
      x += 6;
    }
  }
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1000 || a < 0.01 ? v.toExponential(1) : v.toPrecision(3);
}

function panel(
  cv: Canvas,
  box: { x: number; y: number; w: number; h: number },
  series: Series[],
  steps: [number, number],
) {
  const pts = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  if (pts.length === 0) return;
  let lo = Math.min(...pts), hi = Math.max(...pts);
  if (hi - lo < 1e-12) {
    lo -= 0.5;
    hi += 0.5;
  }
  const grey = [200, 200, 200], dark = [60, 60, 60];
  const X = (s: number) => box.x + (s - steps[0]) / Math.max(steps[1] - steps[0], 1) * box.w;
  const Y = (v: number) => box.y + box.h - (v - lo) / (hi - lo) * box.h;
  for (let k = 0; k <= 4; k++) {
    const v = lo + (hi - lo) * k / 4;
    cv.line(box.x, Y(v), box.x + box.w, Y(v), grey);
    cv.text(box.x - 6 * fmt(v).length - 4, Y(v) - 3, fmt(v), dark);
  }
  cv.line(box.x, box.y, box.x, box.y + box.h, dark);
  cv.line(box.x, box.y + box.h, box.x + box.w, box.y + box.h, dark);
  for (const s of series) {
    for (let i = 1; i < s.points.length; i++) {
      const [a, b] = [s.points[i - 1]!, s.points[i]!];
      if (Number.isFinite(a[1]) && Number.isFinite(b[1])) {
        cv.line(X(a[0]), Y(a[1]), X(b[0]), Y(b[1]), s.color);
      }
    }
  }
  let lx = box.x + 8;
  for (const s of series) {
    cv.rect(lx, box.y + 4, 10, 7, s.color);
    cv.text(lx + 14, box.y + 4, s.label, dark);
    lx += 14 + 6 * s.label.length + 16;
  }
}

/**
 * Draws the loss chart.
 *
 * @param top Series of the top panel (total, SigLIP).
 * @param bottom Series of the bottom panel (box losses).
 * @param options Image size (default 720 x 480).
 * @returns PNG bytes.
 */
export function plotLosses(
  top: Series[],
  bottom: Series[],
  options: { width?: number; height?: number } = {},
): Uint8Array {
  const w = options.width ?? 720, h = options.height ?? 480;
  const cv = new Canvas(w, h);
  const all = [...top, ...bottom].flatMap((s) => s.points.map((p) => p[0]));
  const steps: [number, number] = all.length ? [Math.min(...all), Math.max(...all)] : [0, 1];
  const left = 70, right = 20, gap = 40, title = 18;
  const ph = (h - title - gap - 30) / 2;
  panel(cv, { x: left, y: title, w: w - left - right, h: ph }, top, steps);
  panel(cv, { x: left, y: title + ph + gap, w: w - left - right, h: ph }, bottom, steps);
  const dark = [60, 60, 60];
  cv.text(left, 4, "loss", dark);
  cv.text(left, h - 12, `step ${steps[0]}`, dark);
  const end = `step ${steps[1]}`;
  cv.text(w - right - 6 * end.length, h - 12, end, dark);
  return encodePng(cv.rgb, { width: w, height: h });
}

/**
 * Draws the loss curves of a run's metrics into `loss.png` (atomically).
 *
 * @param out The run folder.
 * @param metrics The run's metrics file.
 */
export async function writePlot(out: string, metrics: JsonLines): Promise<void> {
  const recs = (await metrics.readAll()).filter((r) =>
    typeof r.loss === "number"
  ) as unknown as StepRecord[];
  if (recs.length < 2) return;
  const pts = (k: keyof StepRecord) =>
    recs.map((r) => [r.step, r[k] as number] as [number, number]);
  const png = plotLosses(
    [
      { label: "total", color: [40, 40, 40], points: pts("loss") },
      { label: "siglip", color: [31, 119, 180], points: pts("contrastive") },
    ],
    [
      { label: "prior box", color: [255, 127, 14], points: pts("prior_box") },
      { label: "posterior box", color: [44, 160, 44], points: pts("posterior_box") },
    ],
  );
  await writeFileAtomic(join(out, "loss.png"), png);
}
