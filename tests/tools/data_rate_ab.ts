/**
 * The per-image data work on one thread, side by side in one run: `prepareSample` (JPEG
 * decode, random resized crop, bicubic resize to 1512^2, normalisation, box map, tokens) of
 * this tree and of an older revision, and Pillow's decode + crop + resize + normalise in a
 * persistent Python process. The three alternate in rounds, so the load swings of a shared
 * machine fall on all of them; the medians and the median per-round ratios are printed.
 * Checks first that both revisions prepare the same sample (same image floats). Then the
 * decode and the resize of a 2136x1425 crop to 1512^2 on their own, the same way (the resize
 * of this tree with both engines).
 *
 * ```sh
 * deno run -A tests/tools/data_rate_ab.ts <old revision> [rounds] [image]
 * deno run -A tests/tools/data_rate_ab.ts 5232ade 8 tests/testdata/dock.jpg
 * ```
 *
 * Needs git (the old revision's `src/` is extracted to a temporary folder) and, for the
 * Pillow column, `python3` with Pillow and numpy.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { prepareSample } from "../../src/data/pipeline/sample.ts";
import { Rng } from "../../src/util/rng.ts";

const [rev, roundsArg, imageArg] = Deno.args;
if (!rev) throw new Error("Usage: data_rate_ab.ts <old revision> [rounds] [image]");
const rounds = Number(roundsArg ?? 8);
const root = fileURLToPath(new URL("../../", import.meta.url));
const image = imageArg ?? join(root, "tests/testdata/dock.jpg");

const dir = await Deno.makeTempDir({ prefix: "ps3_ab_" });
const tar = new Deno.Command("sh", {
  args: ["-c", `git -C "${root}" archive "${rev}" src deno.json | tar -x -C "${dir}"`],
}).outputSync();
if (!tar.success) {
  throw new Error(`Cannot extract "${rev}": ${new TextDecoder().decode(tar.stderr)}`);
}
// Both revisions are imported dynamically, the old one first: Deno 2.9.6 panics ("RefCell
// already borrowed") when a dynamic import reaches the decoders' `import source` WebAssembly
// after a static import loaded it.
type SampleModule = { prepareSample: typeof prepareSample };
const old = await import(join(dir, "src/data/pipeline/sample.ts")) as SampleModule;
const cur = await import("../../src/data/pipeline/sample.ts") as SampleModule;
type Stages = {
  decodeImage: typeof import("../../src/data/formats/image.ts").decodeImage;
  resizeBicubic: typeof import("../../src/data/pipeline/resize.ts").resizeBicubic;
};
const oldStages = {
  ...await import(join(dir, "src/data/formats/image.ts")),
  ...await import(join(dir, "src/data/pipeline/resize.ts")),
} as Stages;
const curStages = {
  ...await import("../../src/data/formats/image.ts"),
  ...await import("../../src/data/pipeline/resize.ts"),
} as Stages;
const { loadTokenizer } = await import("../../src/data/formats/tokenizer.ts");
const { unigramTokenizerJson } = await import("../../src/data/tools/synth.ts");

const bytes = await Deno.readFile(image);
await Deno.writeTextFile(join(dir, "tok.json"), JSON.stringify(unigramTokenizerJson([])));
const tok = await loadTokenizer(join(dir, "tok.json"));
const input = {
  key: "0",
  imageName: "0.jpg",
  imageBytes: bytes,
  jsonName: "0.json",
  jsonBytes: new TextEncoder().encode(
    JSON.stringify({ text: ["The dock."], box: [[0, 900, 1125, 1500]], global_text: "A harbour." }),
  ),
};
const opts = {
  imageSize: 1512,
  train: true,
  globalCaptionProb: 0.25,
  sampleNBoxEachImage: 1,
  sentenceMasking: true,
  maxPixels: 1e9,
  contextLength: 64,
  mean: [0.5, 0.5, 0.5] as [number, number, number],
  std: [0.5, 0.5, 0.5] as [number, number, number],
};
const a = old.prepareSample(input, tok, opts, new Rng(3)).image;
const b = cur.prepareSample(input, tok, opts, new Rng(3)).image;
const same = a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
console.log(`same image floats from ${rev} and this tree: ${same}`);

const py = `
import sys, time, io, math, numpy as np
from PIL import Image
b = open(sys.argv[1], "rb").read()
def prep(i):
    im = Image.open(io.BytesIO(b)).convert("RGB")
    w, h = im.size
    cw, ch = round(w * math.sqrt(0.95)), round(h * math.sqrt(0.95))
    x0, y0 = (i * 7) % (w - cw + 1), (i * 5) % (h - ch + 1)
    out = im.crop((x0, y0, x0 + cw, y0 + ch)).resize((1512, 1512), Image.BICUBIC)
    a = np.asarray(out, dtype=np.float32).transpose(2, 0, 1)
    return (a / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
prep(0)
for line in sys.stdin:
    n = int(line)
    t0 = time.perf_counter()
    for i in range(n): prep(i)
    print((time.perf_counter() - t0) * 1000 / n, flush=True)
`;
let child: Deno.ChildProcess | null = null;
try {
  child = new Deno.Command("python3", {
    args: ["-c", py, image],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
} catch (e) {
  console.log(`no Pillow column: ${(e as Error).message}`);
}
const writer = child?.stdin.getWriter();
const reader = child?.stdout.pipeThrough(new TextDecoderStream()).getReader();
let pending = "";
async function pillow(n: number): Promise<number> {
  if (!writer || !reader) return NaN;
  await writer.write(new TextEncoder().encode(`${n}\n`));
  while (!pending.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) return NaN;
    pending += value;
  }
  const i = pending.indexOf("\n");
  const line = pending.slice(0, i);
  pending = pending.slice(i + 1);
  return Number(line);
}
function ours(f: typeof prepareSample, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f(input, tok, opts, new Rng(i));
  return (performance.now() - t0) / n;
}

const per = 3;
const res = { old: [] as number[], new: [] as number[], pillow: [] as number[] };
for (let r = 0; r < rounds; r++) {
  res.old.push(ours(old.prepareSample, per));
  res.new.push(ours(cur.prepareSample, per));
  res.pillow.push(await pillow(per));
  console.log(
    `round ${r}: ${rev} ${res.old.at(-1)!.toFixed(0)} ms, this tree ${
      res.new.at(-1)!.toFixed(0)
    } ms, Pillow ${res.pillow.at(-1)!.toFixed(0)} ms per image`,
  );
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
const ratio = (x: number[], y: number[]) => med(x.map((v, i) => v / y[i]!)).toFixed(2);
const rate = (xs: number[]) => (1000 / med(xs)).toFixed(2);
console.log(
  `images/s (median): ${rev} ${rate(res.old)}, this tree ${rate(res.new)}, Pillow ${
    rate(res.pillow)
  }`,
);
console.log(
  `median per-round time ratios: ${rev} / this tree ${ratio(res.old, res.new)}, ` +
    `this tree / Pillow ${ratio(res.new, res.pillow)}, ${rev} / Pillow ${
      ratio(res.old, res.pillow)
    }`,
);
// The two stages on their own (same rounds idea): decode, and the resize of a training crop.
const decoded = curStages.decodeImage(bytes, { file: image, maxPixels: 1e9 }).image;
const crop = { left: 57, top: 37, width: 2136, height: 1425 };
const stage: Record<string, () => unknown> = {
  [`decode ${rev}`]: () => oldStages.decodeImage(bytes, { file: image, maxPixels: 1e9 }),
  "decode this tree": () => curStages.decodeImage(bytes, { file: image, maxPixels: 1e9 }),
  [`resize ${rev}`]: () => oldStages.resizeBicubic(decoded, { width: 1512, height: 1512, crop }),
  "resize this tree (js)": () =>
    curStages.resizeBicubic(decoded, { width: 1512, height: 1512, crop, engine: "js" }),
  "resize this tree (simd)": () =>
    curStages.resizeBicubic(decoded, { width: 1512, height: 1512, crop }),
};
const stageMs: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, f] of Object.entries(stage)) {
    const t0 = performance.now();
    for (let i = 0; i < per; i++) f();
    (stageMs[name] ??= []).push((performance.now() - t0) / per);
  }
}
for (const [name, xs] of Object.entries(stageMs)) {
  console.log(`${name.padEnd(26)} median ${med(xs).toFixed(1)} ms`);
}
console.log(`load average at the end: ${Deno.loadavg().map((v) => v.toFixed(1)).join(" ")}`);
await writer?.close();
await child?.status;
await Deno.remove(dir, { recursive: true });
