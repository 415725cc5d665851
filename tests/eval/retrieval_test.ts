/**
 * The ranking metrics against float64 references that work differently: they sort every
 * query's items by score and read the correct item's tie group off the sorted order.
 */
import assert from "node:assert/strict";
import {
  imageTextRetrieval,
  recallAtK,
  zeroshotAccuracy,
  zeroshotClassifier,
} from "../../src/eval/retrieval.ts";
import { GroundingAccumulator, pointingHit } from "../../src/eval/grounding.ts";
import { Rng } from "../../src/util/rng.ts";

/** Float64 dot products. */
function dots(a: ArrayLike<number>, b: ArrayLike<number>, d: number): number[][] {
  const n = a.length / d, m = b.length / d;
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: m }, (_, j) => {
      let s = 0;
      for (let c = 0; c < d; c++) s += a[i * d + c]! * b[j * d + c]!;
      return s;
    }));
}

/** P(rank <= k) with random tie-breaking, from the sorted order: the correct item's tie group
 * occupies positions first..last, each equally likely. */
function refHit(row: number[], target: number, k: number): number {
  const order = row.map((s, j) => [s, j] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]);
  const s = row[target]!;
  const first = order.findIndex(([v]) => v === s);
  let last = first;
  while (last + 1 < order.length && order[last + 1]![0] === s) last++;
  let inside = 0;
  for (let p = first; p <= last; p++) if (p < k) inside++;
  return inside / (last - first + 1);
}

function refRecall(rows: number[][], targets: number[], k: number): number {
  return rows.reduce((a, r, i) => a + refHit(r, targets[i]!, k), 0) / rows.length;
}

/** Random features: continuous and normalised, or small integers (many exact ties). */
function features(rng: Rng, n: number, d: number, kind: "gauss" | "ties"): Float32Array {
  const f = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let c = 0; c < d; c++) {
      const v = kind === "ties" ? rng.int(3) - 1 : rng.next() * 2 - 1;
      f[i * d + c] = v;
      norm += v * v;
    }
    if (kind === "gauss") { for (let c = 0; c < d; c++) f[i * d + c]! /= Math.sqrt(norm); }
  }
  return f;
}

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs reference ${b}`);

Deno.test("imageTextRetrieval matches the float64 sorting reference, with and without ties", () => {
  const rng = new Rng(3);
  for (const [n, d, kind] of [[37, 8, "gauss"], [50, 3, "ties"], [23, 2, "ties"]] as const) {
    const img = features(rng, n, d, kind);
    const txt = features(rng, n, d, kind);
    // A few duplicated texts: exact ties on the correct item's own score.
    if (kind === "ties") txt.copyWithin(0, d, 3 * d);
    const r = imageTextRetrieval(img, txt, d);
    const s = dots(img, txt, d);
    const sT = s[0]!.map((_, j) => s.map((row) => row[j]!));
    const targets = Array.from({ length: n }, (_, i) => i);
    for (const k of [1, 5, 10]) {
      close(r.imageToText[k]!, refRecall(s, targets, k), `${kind} i2t R@${k}`);
      close(r.textToImage[k]!, refRecall(sT, targets, k), `${kind} t2i R@${k}`);
      assert.equal(r.chance[k], Math.min(k, n) / n);
    }
    if (kind === "ties") {
      // The references would differ if ties were ignored: check the set really has ties.
      const hasTie = s.some((row, i) => row.some((v, j) => j !== i && v === row[i]));
      assert.ok(hasTie);
    }
  }
});

Deno.test("recallAtK: without ties it is open_clip's argsort position < k", () => {
  const rng = new Rng(5);
  const n = 40, d = 6;
  const img = features(rng, n, d, "gauss"), txt = features(rng, n, d, "gauss");
  const s = dots(img, txt, d);
  const r = recallAtK(s.flat(), n, Array.from({ length: n }, (_, i) => i), [1, 5, 10]);
  for (const k of [1, 5, 10]) {
    let hits = 0;
    s.forEach((row, i) => {
      const ranking = row.map((v, j) => [v, j] as const).sort((x, y) => y[0] - x[0]);
      if (ranking.findIndex(([, j]) => j === i) < k) hits++;
    });
    assert.equal(r[k], hits / n);
  }
});

Deno.test("recallAtK: a collapsed model (all scores equal) scores exactly chance", () => {
  const n = 20;
  const r = recallAtK(new Float64Array(n * n).fill(0.3), n, [...Array(n).keys()], [1, 5, 10]);
  for (const k of [1, 5, 10]) close(r[k]!, k / n, `R@${k}`);
  assert.throws(() => recallAtK([1, 2], 2, [2], [1]), /target 2 is not in 0..1/);
  assert.throws(() => recallAtK([1, 2, 3], 2, [0], [1]), /expected 2/);
});

Deno.test("zero-shot: classifier and top-1/top-5 match the float64 reference, ties included", () => {
  const rng = new Rng(11);
  for (
    const [classes, templates, d, kind] of [[7, 3, 5, "gauss"], [9, 2, 3, "ties"], [
      3,
      1,
      4,
      "ties",
    ]] as const
  ) {
    const prompts = features(rng, classes * templates, d, kind);
    const w = zeroshotClassifier(prompts, classes, d);
    // Reference classifier: mean of the templates' features, divided by its float64 norm.
    const ref: number[] = [];
    for (let c = 0; c < classes; c++) {
      const m = Array.from({ length: d }, (_, x) => {
        let s = 0;
        for (let t = 0; t < templates; t++) s += prompts[(c * templates + t) * d + x]!;
        return s / templates;
      });
      const norm = Math.hypot(...m) || 1;
      ref.push(...m.map((v) => v / norm));
    }
    ref.forEach((v, i) => assert.ok(Math.abs(v - w[i]!) < 1e-12));
    const n = 60;
    const img = features(rng, n, d, kind);
    const labels = Array.from({ length: n }, () => rng.int(classes));
    // Exact ties for the ties case: use the rounded classifier so dot products tie.
    const cls = kind === "ties" ? Float64Array.from(prompts.subarray(0, classes * d)) : w;
    const z = zeroshotAccuracy(img, cls, labels, d);
    const s = dots(img, cls, d);
    close(z.top1, refRecall(s, labels, 1), `${kind} top-1`);
    close(z.top5, refRecall(s, labels, 5), `${kind} top-5`);
    assert.equal(z.chance.top1, 1 / classes);
    assert.equal(z.chance.top5, Math.min(5, classes) / classes);
    if (classes <= 5) assert.equal(z.top5, 1);
  }
});

Deno.test("pointing: the argmax inside the box, tied maxima counted by the fraction inside", () => {
  assert.equal(pointingHit([0.1, 0.9, 0.2], [0, 1, 0]), 1);
  assert.equal(pointingHit([0.1, 0.9, 0.2], [1, 0, 1]), 0);
  assert.equal(pointingHit([0.9, 0.9, 0.9, 0.1], [1, 0, 0, 1]), 1 / 3);
  const rng = new Rng(2);
  const acc = new GroundingAccumulator(2);
  let refHits = 0, inS = 0, inN = 0, outS = 0, outN = 0, chance = 0;
  for (let i = 0; i < 30; i++) {
    const maps = [16, 64].map((g) => Float32Array.from({ length: g }, () => rng.int(4) / 4));
    const tgts = [16, 64].map((g) => Float32Array.from({ length: g }, () => rng.int(2)));
    acc.add(maps, tgts);
    maps.forEach((p, s) => {
      const t = tgts[s]!;
      const max = Math.max(...p);
      const at = [...p.keys()].filter((j) => p[j] === max);
      refHits += at.filter((j) => t[j] === 1).length / at.length;
      chance += t.reduce((a, v) => a + v, 0) / t.length;
      p.forEach((v, j) => (t[j] ? ((inS += v), inN++) : ((outS += v), outN++)));
    });
  }
  const r = acc.result();
  assert.equal(r.n, 30);
  close(r.pointing, refHits / 60, "pointing");
  close(r.pointingChance, chance / 60, "pointing chance");
  close(r.probInside, inS / inN, "inside");
  close(r.probOutside, outS / outN, "outside");
  assert.throws(() => acc.add([new Float32Array(16)], []), /1 probability maps and 0 targets/);
});
