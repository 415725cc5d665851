/**
 * `ps3 eval`: evaluates a training checkpoint or a Hugging Face PS3 folder on a whole
 * evaluation set (image-text retrieval, region grounding) and zero-shot folders, with a
 * progress bar, a short table on stdout and a JSON report.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { initGpu } from "../gpu/runtime.ts";
import { Ps3Clip, type TrainOptions } from "../model/ps3_clip.ts";
import { Ps3Encoder } from "../encode/ps3_encoder.ts";
import { readTrainState } from "../checkpoint/train_checkpoint.ts";
import { writeFileAtomic } from "../checkpoint/atomic.ts";
import { evaluateDataset, type ZeroshotSpec } from "../eval/run_eval.ts";
import { formatReport, reportJson } from "../eval/report.ts";

const USAGE =
  `Usage: ps3 eval --checkpoint <dir> --data <image shards> [<text-box shards>] [options]

Evaluates a model on every sample of an evaluation set: image->text and text->image
retrieval R@1/5/10 with the global captions, caption->region retrieval R@1/5 and pointing
accuracy of the top-down selection with the local captions; and zero-shot top-1/top-5 on
folders of class sub-folders. Ties are broken uniformly at random, in expectation.

Options:
  --checkpoint <dir>     Training checkpoint (step_*/) or Hugging Face PS3 folder (full model)
  --data <shards> [<t>]  Image shards and, for the paired layout, text-box shards
                         (brace lists: "holdout/images/image_{00000..00001}.tar")
  --tokenizer <file>     tokenizer.json (default: <checkpoint>/tokenizer.json, or the one of
                         the checkpoint's run config)
  --zeroshot <folder>    Zero-shot folder (repeatable); uses <folder>/classnames.txt and
                         <folder>/templates.txt when present
  --classnames <file>    Class names for every --zeroshot folder
  --templates <file>     Prompt templates ({c} = class name) for every --zeroshot folder
  --out <file>           Write the report as JSON
  --heatmaps <dir>       Write selection heat maps of the first 4 local-caption samples
  --batch-size <n>       Samples per forward (default 16)
  --workers <n>          Decode workers (default 2)
  --seed <n>             Seed of the local-caption draw (default 0)
  --strict               Fail at the first bad sample instead of skipping and counting it`;

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

/** The tokenizer and switches a training checkpoint's run config names. */
async function fromRunConfig(
  ckpt: string,
): Promise<{ tokenizer?: string | undefined; opts: Partial<TrainOptions> }> {
  if (!await exists(join(ckpt, "state.json"))) return { opts: {} };
  const state = await readTrainState(ckpt);
  const rc = state.runConfig as {
    data?: { tokenizer?: string | null; synthesize?: { out?: string } | null };
    train?: Record<string, unknown>;
  };
  let tokenizer = rc.data?.tokenizer ?? undefined;
  const synth = rc.data?.synthesize?.out;
  if (!tokenizer && synth) {
    try {
      const m = JSON.parse(await Deno.readTextFile(join(synth, "dataset.json")));
      tokenizer = join(synth, m.tokenizer);
    } catch {
      // the synthetic dataset is gone: --tokenizer is needed
    }
  }
  const t = rc.train ?? {};
  const flag = (k: string) => (typeof t[k] === "boolean" ? t[k] as boolean : undefined);
  const opts: Partial<TrainOptions> = {};
  const sw = flag("select_w_gt"), pg = flag("pool_gt_token_only"), ug = flag("use_global_caption");
  if (sw !== undefined) opts.selectWithGt = sw;
  if (pg !== undefined) opts.poolGtOnly = pg;
  if (ug !== undefined) opts.useGlobalCaption = ug;
  return { tokenizer, opts };
}

/**
 * Runs `ps3 eval`.
 *
 * @param args Command-line arguments after `eval`.
 * @returns Exit code (0, or 2 for usage errors).
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      checkpoint: { type: "string" },
      data: { type: "string" },
      tokenizer: { type: "string" },
      zeroshot: { type: "string", multiple: true },
      classnames: { type: "string" },
      templates: { type: "string" },
      out: { type: "string" },
      heatmaps: { type: "string" },
      "batch-size": { type: "string" },
      workers: { type: "string" },
      seed: { type: "string" },
      strict: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  // --data takes one value; a text-box shard list follows it as a positional.
  if (!values.checkpoint || !values.data || positionals.length > 1) {
    console.error(`ps3 eval: expected --checkpoint and --data <images> [<text-boxes>]\n\n${USAGE}`);
    return 2;
  }
  const int = (name: string, v: string | undefined, min: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new TypeError(`Cannot parse --${name} "${v}": expected an integer >= ${min}`);
    }
    return n;
  };
  const batchSize = int("batch-size", values["batch-size"], 1);
  const workers = int("workers", values.workers, 1);
  const seed = int("seed", values.seed, 0);
  const ckpt = values.checkpoint;
  const fromRun = await fromRunConfig(ckpt);
  const tokenizer = values.tokenizer ??
    (await exists(join(ckpt, "tokenizer.json")) ? join(ckpt, "tokenizer.json") : fromRun.tokenizer);
  if (!tokenizer) {
    throw new Error(
      `Cannot evaluate "${ckpt}": no tokenizer (give --tokenizer; the folder has no ` +
        "tokenizer.json and no run config naming one)",
    );
  }
  const zeroshot: ZeroshotSpec[] = (values.zeroshot ?? []).map((folder) => ({
    folder,
    classnames: values.classnames,
    templates: values.templates,
  }));

  const rt = await initGpu();
  const encoder = await Ps3Encoder.load(ckpt, { tokenizer });
  const model = encoder.model;
  if (!(model instanceof Ps3Clip)) {
    throw new Error(
      `Cannot evaluate ${encoder.source}: it is vision-only; retrieval and grounding need the ` +
        "text tower (give the full model folder or a training checkpoint)",
    );
  }
  console.error(`model: ${model.config.name} from ${encoder.source}, on ${rt.info.description}`);
  const opts: TrainOptions = {
    selectWithGt: true,
    poolGtOnly: true,
    useGlobalCaption: true,
    checkpoint: false,
    ...fromRun.opts,
  };
  const bar = new ProgressBar(Deno.stderr.isTerminal());
  const report = await evaluateDataset(
    model,
    {
      images: values.data,
      texts: positionals[0],
      tokenizer,
      batchSize,
      workers,
      seed,
      strict: values.strict,
    },
    opts,
    {
      zeroshot,
      heatmaps: values.heatmaps ? 4 : 0,
      onProgress: (phase, done, total) => bar.update(phase, done, total),
    },
  );
  bar.clear();
  console.log(formatReport(report));
  if (values.out) {
    const json = { checkpoint: ckpt, model: model.config.name, ...reportJson(report) };
    await writeFileAtomic(values.out, JSON.stringify(json, null, 2) + "\n");
    console.log(`report: ${values.out}`);
  }
  if (values.heatmaps) {
    await Deno.mkdir(values.heatmaps, { recursive: true });
    for (const h of report.heatmaps) {
      await Deno.writeFile(join(values.heatmaps, `selection_${h.key}.png`), h.png);
    }
    console.log(`heat maps: ${report.heatmaps.length} in ${values.heatmaps}/`);
  }
  return 0;
}

/** A one-line progress bar on stderr (a line per finished phase when not a terminal). */
class ProgressBar {
  readonly #tty: boolean;
  readonly #enc = new TextEncoder();
  #t0 = performance.now();
  #phase = "";
  #shown = false;

  constructor(tty: boolean) {
    this.#tty = tty;
  }

  update(phase: string, done: number, total: number): void {
    if (phase !== this.#phase) {
      this.#phase = phase;
      this.#t0 = performance.now();
    }
    const s = (performance.now() - this.#t0) / 1000;
    if (!this.#tty) {
      if (done >= total && total > 0) {
        console.error(`${phase}: ${done}/${total} in ${s.toFixed(1)} s`);
      }
      return;
    }
    const width = 30;
    const fill = total ? Math.min(width, Math.round(width * done / total)) : 0;
    const eta = done ? s / done * Math.max(0, total - done) : 0;
    const line = `[${"#".repeat(fill)}${".".repeat(width - fill)}] ${done}/${total} ` +
      `${s.toFixed(0)} s, ~${eta.toFixed(0)} s left  ${phase}`;
    Deno.stderr.writeSync(this.#enc.encode(`\r\x1b[K${line}`));
    this.#shown = true;
  }

  clear(): void {
    if (this.#shown) Deno.stderr.writeSync(this.#enc.encode("\r\x1b[K"));
    this.#shown = false;
  }
}
