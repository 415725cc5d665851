/**
 * The evaluation report in three forms: a JSON-safe object (`ps3 eval --out`), a short table
 * (stdout, training log), and flat scalars (TensorBoard tags, metrics.jsonl).
 *
 * @module
 */

import type { DatasetEvalReport } from "./run_eval.ts";

/**
 * The report without the heat-map images (for JSON).
 *
 * @param r The report.
 * @returns A JSON-safe object (non-finite numbers become null when stringified).
 */
export function reportJson(r: DatasetEvalReport): Omit<DatasetEvalReport, "heatmaps"> {
  const { heatmaps: _, ...rest } = r;
  return rest;
}

/**
 * Flat scalars of the report, tagged for TensorBoard (`eval/image_to_text/R@1`, ...);
 * fractions in [0, 1].
 *
 * @param r The report.
 * @param prefix Tag prefix (default `eval`).
 * @returns Tag -> value.
 */
export function reportScalars(r: DatasetEvalReport, prefix = "eval"): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (tag: string, v: number | undefined) => {
    if (v !== undefined && Number.isFinite(v)) out[`${prefix}/${tag}`] = v;
  };
  if (r.retrieval) {
    for (const [k, v] of Object.entries(r.retrieval.imageToText)) put(`image_to_text/R@${k}`, v);
    for (const [k, v] of Object.entries(r.retrieval.textToImage)) put(`text_to_image/R@${k}`, v);
  }
  const g = r.grounding;
  if (g) {
    for (const [k, v] of Object.entries(g.captionToRegion)) put(`caption_to_region/R@${k}`, v);
    put("pointing/mean", g.pointing);
    g.pointingPerScale.forEach((v, s) => put(`pointing/scale_${s + 1}`, v));
    put("selection_prob/inside", g.probInside);
    put("selection_prob/outside", g.probOutside);
  }
  for (const z of r.zeroshot) {
    const name = z.folder.replace(/\/+$/, "").split("/").pop() ?? z.folder;
    put(`zeroshot/${name}/top1`, z.top1);
    put(`zeroshot/${name}/top5`, z.top5);
  }
  return out;
}

const pct = (v: number | undefined) =>
  v === undefined || !Number.isFinite(v) ? "  -  " : (100 * v).toFixed(1).padStart(5);
const ks = (rec: Record<number, number>, list: readonly number[]) =>
  list.map((k) => pct(rec[k])).join(" / ");

/**
 * A short table of the report: each figure beside its chance level (percentages).
 *
 * @param r The report.
 * @returns Lines of text.
 */
export function formatReport(r: DatasetEvalReport): string {
  const rows: [string, string, string][] = [];
  if (r.retrieval) {
    const t = r.retrieval, c = t.chance;
    rows.push([
      `image->text R@1/5/10 (${t.n} pairs)`,
      ks(t.imageToText, [1, 5, 10]),
      ks(c, [1, 5, 10]),
    ]);
    rows.push([`text->image R@1/5/10`, ks(t.textToImage, [1, 5, 10]), ks(c, [1, 5, 10])]);
  }
  const g = r.grounding;
  if (g) {
    rows.push([
      `caption->region R@1/5 (${g.n} regions)`,
      ks(g.captionToRegion, [1, 5]),
      ks(g.chance, [1, 5]),
    ]);
    rows.push([
      `pointing, mean of ${g.pointingPerScale.length} scales`,
      `${pct(g.pointing)} (${g.pointingPerScale.map(pct).map((s) => s.trim()).join(", ")})`,
      pct(g.pointingChance),
    ]);
    rows.push([
      "selection prob. inside / outside",
      `${g.probInside.toFixed(3)} / ${g.probOutside.toFixed(3)}`,
      "equal",
    ]);
  }
  for (const z of r.zeroshot) {
    rows.push([
      `zero-shot top-1/5 ${z.folder} (${z.n} images, ${z.classes} classes)`,
      `${pct(z.top1)} / ${pct(z.top5)}`,
      `${pct(z.chance.top1)} / ${pct(z.chance.top5)}`,
    ]);
  }
  const w = Math.max(6, ...rows.map((x) => x[0].length));
  const v = Math.max(5, ...rows.map((x) => x[1].length));
  const lines = [
    `${"metric (%)".padEnd(w)}  ${"value".padEnd(v)}  chance`,
    ...rows.map(([a, b, c]) => `${a.padEnd(w)}  ${b.padEnd(v)}  ${c}`),
  ];
  const skipped = Object.entries(r.skipped).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  lines.push(
    `samples: ${r.samples.images} images, ${r.samples.global} global captions, ` +
      `${r.samples.local} local captions; skipped: ${skipped}`,
  );
  return lines.join("\n");
}
