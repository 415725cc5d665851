/**
 * A zero-shot classification set from the synthetic shapes: scenes with exactly one shape,
 * in class folders named `<colour>_<shape>` (40 classes), with prompt templates that use
 * only the synthetic tokenizer's words. Images come from their own random stream, so they are
 * not images of the training set.
 *
 * @module
 */

import { join } from "node:path";
import { COLORS, renderScene, SHAPES } from "../data/tools/synth.ts";
import { encodePng } from "../data/formats/png.ts";
import { deriveRng } from "../data/pipeline/shards.ts";

/** The templates written to `templates.txt` (words of the synthetic captions only). */
export const SYNTH_TEMPLATES: readonly string[] = ["a {c}.", "the {c}.", "there is a {c} here."];

/** The stream id of zero-shot scenes (training and held-out scenes use 0 and 1). */
const ZEROSHOT_STREAM = 7;

/**
 * Writes `out/<colour>_<shape>/<n>.png` and `out/templates.txt`.
 *
 * @param out Output folder (created).
 * @param options Images per class (default 2), seed, image size.
 * @returns Classes and images written.
 * @example
 * ```ts
 * await writeSynthZeroshot("runs/synth/zeroshot", { perClass: 2 });
 * ```
 */
export async function writeSynthZeroshot(
  out: string,
  options: {
    perClass?: number | undefined;
    seed?: number | undefined;
    width?: number | undefined;
    height?: number | undefined;
  } = {},
): Promise<{ classes: number; images: number }> {
  const per = options.perClass ?? 2;
  if (!(Number.isInteger(per) && per >= 1)) {
    throw new RangeError(`Cannot write ${per} zero-shot images per class: need an integer >= 1`);
  }
  const counts = new Map<string, number>();
  for (const c of Object.keys(COLORS)) for (const s of SHAPES) counts.set(`${c}_${s}`, 0);
  let left = counts.size * per, images = 0;
  for (let i = 0; left > 0; i++) {
    if (i > 200 * counts.size * per) {
      throw new Error(`Cannot fill every zero-shot class after ${i} scenes`);
    }
    const scene = renderScene(deriveRng([options.seed ?? 0, ZEROSHOT_STREAM, i]), {
      width: options.width ?? 256,
      height: options.height ?? 192,
    });
    if (scene.shapes.length !== 1) continue;
    const cls = `${scene.shapes[0]!.color}_${scene.shapes[0]!.shape}`.replaceAll(" ", "_");
    const have = counts.get(cls);
    if (have === undefined || have >= per) continue;
    await Deno.mkdir(join(out, cls), { recursive: true });
    await Deno.writeFile(join(out, cls, `${have}.png`), encodePng(scene.pixels, scene));
    counts.set(cls, have + 1);
    left--;
    images++;
  }
  await Deno.writeTextFile(join(out, "templates.txt"), SYNTH_TEMPLATES.join("\n") + "\n");
  return { classes: counts.size, images };
}
