/**
 * Ranking metrics on score matrices: recall@k of retrieval (image->text, text->image,
 * caption->region) and top-k accuracy of zero-shot classification, plus the similarity
 * and zero-shot classifier they are computed from.
 *
 * **Tie rule.** A query's correct item is ranked among the others by score, and ties are
 * broken uniformly at random; every figure is the exact expectation over that draw. With
 * `g` items scoring strictly higher than the correct one and `e` others scoring equal, the
 * rank is `1 + g + U` with `U` uniform on `0..e`, so
 * `P(rank <= k) = clamp((k - g) / (e + 1), 0, 1)`. Without ties this is the plain indicator
 * `rank <= k`, which is what open_clip computes (`get_clip_metrics`: argsort, then the
 * position of the ground truth; zero-shot: `topk`). With ties open_clip's figure depends on
 * the order torch's sort happens to return, so it can be anywhere between the pessimistic
 * (`rank = 1 + #greater-or-equal`) and optimistic (`rank = 1 + #greater`) values; ours is
 * their tie-fair middle, and a collapsed model (every score equal) scores exactly chance,
 * `k / n`, instead of 100 % (optimistic) or 0 % (pessimistic).
 *
 * @module
 */

/**
 * The probability that the correct item is within the first k under the tie rule above.
 *
 * @param greater Items scoring strictly higher than the correct one.
 * @param equal Other items scoring exactly the same.
 * @param k The cut-off.
 * @returns A value in [0, 1].
 */
export function hitProbability(greater: number, equal: number, k: number): number {
  return Math.min(1, Math.max(0, (k - greater) / (equal + 1)));
}

/**
 * Counts, for each query row of a score matrix, the items scoring above and equal to its
 * correct item.
 *
 * @param scores Row-major `[queries, items]`.
 * @param items Items per row.
 * @param target Index of each query's correct item.
 * @returns `greater[q]` and `equal[q]` (the correct item itself not counted).
 */
export function rankCounts(
  scores: ArrayLike<number>,
  items: number,
  target: ArrayLike<number>,
): { greater: Int32Array; equal: Int32Array } {
  const q = target.length;
  if (scores.length !== q * items) {
    throw new RangeError(
      `Cannot rank ${q} queries over ${items} items from ${scores.length} scores ` +
        `(expected ${q * items})`,
    );
  }
  const greater = new Int32Array(q), equal = new Int32Array(q);
  for (let i = 0; i < q; i++) {
    const t = target[i]!;
    if (!(Number.isInteger(t) && t >= 0 && t < items)) {
      throw new RangeError(`Cannot rank query ${i}: its target ${t} is not in 0..${items - 1}`);
    }
    const row = i * items, s = scores[row + t]!;
    if (Number.isNaN(s)) throw new RangeError(`Cannot rank query ${i}: its score is NaN`);
    let g = 0, e = 0;
    for (let j = 0; j < items; j++) {
      const v = scores[row + j]!;
      if (v > s) g++;
      else if (v === s) e++;
    }
    greater[i] = g;
    equal[i] = e - 1;
  }
  return { greater, equal };
}

/**
 * Recall@k of every query (mean over queries of {@linkcode hitProbability}).
 *
 * @param scores Row-major `[queries, items]`, higher is better.
 * @param items Items per row.
 * @param target Each query's correct item.
 * @param ks Cut-offs.
 * @returns Recall per cut-off (`{1: r1, 5: r5}`), NaN with no queries.
 * @example
 * ```ts
 * recallAtK([0.9, 0.1, 0.5, 0.5], 2, [0, 1], [1]); // {1: 0.75}: query 1 ties
 * ```
 */
export function recallAtK(
  scores: ArrayLike<number>,
  items: number,
  target: ArrayLike<number>,
  ks: readonly number[],
): Record<number, number> {
  const { greater, equal } = rankCounts(scores, items, target);
  const out: Record<number, number> = {};
  for (const k of ks) {
    let sum = 0;
    for (let i = 0; i < greater.length; i++) sum += hitProbability(greater[i]!, equal[i]!, k);
    out[k] = greater.length ? sum / greater.length : NaN;
  }
  return out;
}

/**
 * Dot products of every row of `a` with every row of `b` (cosine similarities for
 * normalised rows), accumulated in float64.
 *
 * @param a Row-major `[n, d]`.
 * @param b Row-major `[m, d]`.
 * @param d Feature size.
 * @returns Row-major `[n, m]`.
 */
export function similarity(a: ArrayLike<number>, b: ArrayLike<number>, d: number): Float64Array {
  const n = a.length / d, m = b.length / d;
  if (!Number.isInteger(n) || !Number.isInteger(m)) {
    throw new RangeError(`Cannot split ${a.length} and ${b.length} values into rows of ${d}`);
  }
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += a[i * d + c]! * b[j * d + c]!;
      out[i * m + j] = s;
    }
  }
  return out;
}

/** Transposes a row-major `[rows, cols]` matrix. */
function transpose(m: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) out[j * rows + i] = m[i * cols + j]!;
  }
  return out;
}

/** Image-text retrieval figures (fractions in [0, 1]). */
export interface RetrievalFigures {
  /** Pairs evaluated. */
  n: number;
  /** Image -> text recall@1/5/10. */
  imageToText: Record<number, number>;
  /** Text -> image recall@1/5/10. */
  textToImage: Record<number, number>;
  /** Recall@k of a random ranking, `min(k, n) / n`. */
  chance: Record<number, number>;
}

/**
 * Image->text and text->image recall@k of paired features (pair i: image i, text i), over
 * the whole set.
 *
 * @param image Normalised image features `[n, d]`.
 * @param text Normalised text features `[n, d]`.
 * @param d Feature size.
 * @param ks Cut-offs (default 1, 5, 10).
 * @returns The figures.
 */
export function imageTextRetrieval(
  image: ArrayLike<number>,
  text: ArrayLike<number>,
  d: number,
  ks: readonly number[] = [1, 5, 10],
): RetrievalFigures {
  const n = image.length / d;
  if (text.length !== image.length) {
    throw new RangeError(`Cannot pair ${n} images with ${text.length / d} texts`);
  }
  const s = similarity(image, text, d);
  const target = Int32Array.from({ length: n }, (_, i) => i);
  return {
    n,
    imageToText: recallAtK(s, n, target, ks),
    textToImage: recallAtK(transpose(s, n, n), n, target, ks),
    chance: chanceRecall(n, ks),
  };
}

/**
 * Recall@k of a random ranking of n items.
 *
 * @param n Items.
 * @param ks Cut-offs.
 * @returns `min(k, n) / n` per cut-off.
 */
export function chanceRecall(n: number, ks: readonly number[]): Record<number, number> {
  return Object.fromEntries(ks.map((k) => [k, n ? Math.min(k, n) / n : NaN]));
}

/**
 * open_clip's zero-shot classifier: each class's prompt features (one per template)
 * averaged, then normalised.
 *
 * @param promptFeatures Normalised text features `[classes * templates, d]`, class-major
 *   (all templates of class 0 first).
 * @param classes Number of classes.
 * @param d Feature size.
 * @returns Row-major `[classes, d]`, unit rows.
 */
export function zeroshotClassifier(
  promptFeatures: ArrayLike<number>,
  classes: number,
  d: number,
): Float64Array {
  const t = promptFeatures.length / (classes * d);
  if (!Number.isInteger(t) || t < 1) {
    throw new RangeError(
      `Cannot build a classifier of ${classes} classes from ${promptFeatures.length} values of size ${d}`,
    );
  }
  const w = new Float64Array(classes * d);
  for (let c = 0; c < classes; c++) {
    for (let j = 0; j < t; j++) {
      for (let x = 0; x < d; x++) w[c * d + x]! += promptFeatures[(c * t + j) * d + x]! / t;
    }
    let norm = 0;
    for (let x = 0; x < d; x++) norm += w[c * d + x]! ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let x = 0; x < d; x++) w[c * d + x]! /= norm;
  }
  return w;
}

/** Zero-shot classification figures. */
export interface ZeroshotFigures {
  /** Images classified. */
  n: number;
  /** Classes. */
  classes: number;
  /** Top-1 accuracy. */
  top1: number;
  /** Top-5 accuracy. */
  top5: number;
  /** Top-1 / top-5 of a random guess: `1 / classes`, `min(5, classes) / classes`. */
  chance: { top1: number; top5: number };
}

/**
 * Top-1 / top-5 accuracy of images against a zero-shot classifier.
 *
 * @param image Normalised image features `[n, d]`.
 * @param classifier `[classes, d]` (from {@linkcode zeroshotClassifier}).
 * @param labels Class of each image.
 * @param d Feature size.
 * @returns The figures.
 */
export function zeroshotAccuracy(
  image: ArrayLike<number>,
  classifier: ArrayLike<number>,
  labels: ArrayLike<number>,
  d: number,
): ZeroshotFigures {
  const classes = classifier.length / d;
  const r = recallAtK(similarity(image, classifier, d), classes, labels, [1, 5]);
  const chance = chanceRecall(classes, [1, 5]);
  return {
    n: labels.length,
    classes,
    top1: r[1]!,
    top5: r[5]!,
    chance: { top1: chance[1]!, top5: chance[5]! },
  };
}
