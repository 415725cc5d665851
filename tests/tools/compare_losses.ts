/**
 * Compares the logged losses of two training runs step by step (issue 14: the f16 run's
 * curve against the f32 run's): the largest relative difference over every common step and
 * over step ranges, the f16 run's skipped (overflowed) updates, and the held-out evaluations
 * both logged.
 *
 * ```sh
 * deno run -A tests/tools/compare_losses.ts runs/f32/metrics.jsonl runs/f16/metrics.jsonl
 * ```
 *
 * @module
 */

// deno-lint-ignore no-explicit-any
type Rec = Record<string, any>;

const read = (p: string): Rec[] =>
  Deno.readTextFileSync(p).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
const [pa, pb] = Deno.args as [string, string];
const ra = read(pa), rb = read(pb);
const a = ra.filter((r) => "loss" in r), b = rb.filter((r) => "loss" in r);
const n = Math.min(a.length, b.length);
const rel = (i: number) => Math.abs(a[i]!.loss - b[i]!.loss) / a[i]!.loss;
const ranges = [[1, 1], [2, 20], [21, 60], [61, Infinity]] as const;
console.log(`${n} common steps (${a.length} and ${b.length} logged)`);
for (const [lo, hi] of ranges) {
  let worst = 0, at = 0;
  for (let i = 0; i < n; i++) {
    const s = a[i]!.step;
    if (s >= lo && s <= hi && rel(i) > worst) [worst, at] = [rel(i), s];
  }
  if (at) {
    console.log(
      `steps ${lo}-${hi === Infinity ? n : hi}: max relative difference ${
        worst.toExponential(2)
      } (step ${at})`,
    );
  }
}
console.log(
  `skipped updates (second run): ${
    b.filter((r) => r.grad_norm === null).map((r) => r.step).join(", ") || "none"
  }`,
);
const evals = (rs: Rec[]) => new Map(rs.filter((r) => "eval" in r).map((r) => [r.step, r.eval]));
const ea = evals(ra), eb = evals(rb);
for (const [step, e] of ea) {
  const f = eb.get(step);
  if (!f) continue;
  for (const k of Object.keys(e)) {
    if (typeof e[k] === "number") {
      console.log(`eval step ${step} ${k}: ${e[k].toFixed(4)} vs ${f[k].toFixed(4)}`);
    }
  }
}
