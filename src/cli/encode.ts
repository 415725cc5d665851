/**
 * `ps3 encode`: features and selection pictures of images from a trained PS3 model, for one
 * image, a folder of images or a tar shard.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { extname } from "node:path";
import { initGpu } from "../gpu/runtime.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { type LookClose, parseLookClose } from "../model/ps3_inference.ts";
import { encodeBatch } from "../encode/encode_batch.ts";
import {
  type Ps3EncodeOptions,
  Ps3Encoder,
  type Ps3EncodingSummary,
  writeEncoding,
} from "../encode/ps3_encoder.ts";
import { reportProfile, takeProfileFlag } from "../profile/output.ts";
import { profileEncode } from "../profile/encode_step.ts";

const USAGE = `Usage: ps3 encode <image | folder | shard.tar> --checkpoint <folder> [options]

Runs a PS3 model on images as the PS3 package's PS3VisionModel does at inference (bottom-up
selection, or top-down with --prompt) and writes, per image:
  features.safetensors            last_hidden_state [1, N, C]; feature_maps.<i> [1, C, gh, gw]
                                  for every scale i (zeros where not encoded); selection_probs.<i>
                                  and selection_maps.<i> [1, gh, gw] for the high-res scales i >= 1
  selection_prob_scale_<i>.png    scale i's selection probability as a heat map over the photo
  selected_patches_scale_<i>.png  the patches of scale i that were encoded
  summary.json                    token counts per scale, rounds, timings, adapter
Images are resized as the package's processor does: a "squash" to its image_size (Pillow's
bicubic), then (v / 255 - mean) / std. A folder or shard gets one sub-folder per image.
Printed sizes are width x height; arrays and summary.json use [height, width].

Options:
  --checkpoint <dir>        Hugging Face PS3 folder (config.json; a vision-only folder takes
                            no text prompt) or training checkpoint
                            folder (state.json) (required)
  --prompt <text>           Top-down selection for this text (default: bottom-up)
  --tokenizer <file>        tokenizer.json for --prompt (default: <checkpoint>/tokenizer.json)
  --num-look-close <n|all>  Rounds of selection + high-res encoding (default 1)
  --num-tokens <N|all>      High-res tokens to encode instead of rounds (last round partial)
  --keep-aspect             Resize the long side to the processor's size, keeping the aspect
                            ratio (the high-res grids follow it), instead of squashing
  --display-size <px>       Long side of the pictures (default: the image's, within 256..1024)
  --out <dir>               Output folder (default ps3_encode)
  --json                    Print each summary as JSON
  --profile[=<dir>]         One image: encode it once, then profile a second encode (table;
                            profile.txt, profile.json, trace.json in <dir>, default profile/)`;

/**
 * Runs the command.
 *
 * @param args Command-line arguments after `encode`.
 * @returns Exit code (1 when an image of a batch could not be read).
 */
export async function run(allArgs: string[]): Promise<number> {
  const { args, dir: profileDir } = takeProfileFlag(allArgs);
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      checkpoint: { type: "string" },
      prompt: { type: "string" },
      tokenizer: { type: "string" },
      "num-look-close": { type: "string" },
      "num-tokens": { type: "string" },
      "keep-aspect": { type: "boolean" },
      "display-size": { type: "string" },
      out: { type: "string", default: "ps3_encode" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1 || !values.checkpoint) {
    console.error(`ps3 encode: expected one image, folder or shard and --checkpoint\n\n${USAGE}`);
    return 2;
  }
  const input = positionals[0]!;
  const options: Ps3EncodeOptions = {
    numLookClose: lookClose(values["num-look-close"], values["num-tokens"]),
    prompt: values.prompt,
    resize: values["keep-aspect"] ? "keep-aspect" : "squash",
    display: { longSide: displaySide(values["display-size"]) },
  };
  // Fail on a bad path before starting the GPU and loading the model.
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(input);
  } catch (e) {
    throw new Error(`Cannot encode "${input}": ${(e as Error).message}`);
  }
  const rt = await initGpu({ timestamps: profileDir !== null });
  const t0 = performance.now();
  // Without a prompt the text tower is not needed: its weights stay on disk.
  const encoder = await Ps3Encoder.load(values.checkpoint, {
    tokenizer: values.tokenizer,
    visionOnly: values.prompt === undefined,
  });
  console.error(
    `model: ${encoder.model.config.name} from ${encoder.source}, on ${rt.info.description} ` +
      `(loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  const out = values.out;
  if (profileDir !== null) {
    if (!stat.isFile) throw new Error(`Cannot profile "${input}": --profile takes one image`);
    const bytes = await Deno.readFile(input);
    const { profile } = await profileEncode(encoder, bytes, { ...options, file: input });
    await reportProfile(profile, profileDir);
    return 0;
  }
  if (stat.isFile && extname(input).toLowerCase() !== ".tar") {
    const encoding = await encoder.encode(await Deno.readFile(input), { ...options, file: input });
    const files = await writeEncoding(out, encoding);
    print(encoding.summary, values.json);
    console.log(`wrote ${files.length} files to ${out}/`);
    return 0;
  }
  const bar = Deno.stderr.isTerminal() ? new ProgressBar() : null;
  const report = await encodeBatch(encoder, input, {
    ...options,
    out,
    onProgress: (p) => {
      if (p.error) {
        bar?.clear();
        console.error(`skipped: ${p.error.message}`);
      } else if (values.json) {
        bar?.clear();
        console.log(JSON.stringify(p.encoding!.summary));
      } else if (!bar) {
        const s = p.encoding!.summary;
        console.log(
          `[${p.done}/${p.total}] ${p.image.file}: ${s.tokens} tokens, ` +
            `${(s.ms.model / 1000).toFixed(2)} s -> ${out}/${p.image.name}/`,
        );
      }
      bar?.update(p.done, p.total, p.image.name);
    },
  });
  bar?.clear();
  console.log(
    `encoded ${report.encoded} of ${report.total} images to ${out}/` +
      (report.failed.length ? `; ${report.failed.length} could not be read` : ""),
  );
  return report.failed.length ? 1 : 0;
}

function lookClose(rounds: string | undefined, tokens: string | undefined): LookClose {
  if (rounds !== undefined && tokens !== undefined) {
    throw new Error("Cannot use --num-look-close and --num-tokens together: give one");
  }
  if (tokens !== undefined) {
    if (!/^(\d+|all)$/.test(tokens)) {
      throw new RangeError(`Cannot encode --num-tokens "${tokens}": give a count >= 0 or "all"`);
    }
    return parseLookClose(`tokens:${tokens}`);
  }
  return parseLookClose(rounds ?? "1");
}

function displaySide(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Cannot draw pictures of --display-size "${text}": give pixels >= 1`);
  }
  return n;
}

function print(s: Ps3EncodingSummary, json: boolean | undefined): void {
  if (json) {
    console.log(JSON.stringify(s, null, 2));
    return;
  }
  const hw = ([h, w]: readonly number[]) => `${w}x${h}`;
  console.log(
    `${s.file}: ${hw(s.imageSize)} -> input ${hw(s.inputSize)} (${s.preprocessing.resize}), ` +
      `${s.selection}${s.prompt ? ` "${s.prompt}"` : ""}, look close ${s.lookClose}: ` +
      `${s.rounds} round${s.rounds === 1 ? "" : "s"}`,
  );
  for (const sc of s.scales) {
    const what = sc.index === 0
      ? "low-res"
      : `of ${sc.patches} patches, p in [${sc.probRange![0].toFixed(3)}, ` +
        `${sc.probRange![1].toFixed(3)}]`;
    console.log(
      `  scale ${sc.index}  ${String(sc.scale).padStart(5)} px  grid ${hw(sc.grid).padEnd(9)} ${
        String(sc.tokens).padStart(6)
      } tokens ${what}`,
    );
  }
  const ms = s.ms;
  console.log(
    `  total ${s.tokens} tokens; model ${(ms.model / 1000).toFixed(2)} s (decode ${
      (ms.decode / 1000).toFixed(2)
    } s, preprocess ${(ms.preprocess / 1000).toFixed(2)} s, pictures ${
      (ms.draw / 1000).toFixed(2)
    } s at ${hw(s.displaySize)}) on ${s.adapter}`,
  );
  const m = s.memory;
  console.log(
    `  memory: parameters ${fmtBytes(m.params)}, device peak ${fmtBytes(m.devicePeak)} ` +
      `(pool ${fmtBytes(m.devicePool)}), process peak ${
        m.processPeak === null ? "unknown" : fmtBytes(m.processPeak)
      }`,
  );
}

/** A one-line progress bar on a terminal (standard error). */
class ProgressBar {
  #t0 = performance.now();
  #shown = false;
  #enc = new TextEncoder();

  update(done: number, total: number, name: string): void {
    const width = 30;
    const fill = total ? Math.round(width * done / total) : width;
    const s = (performance.now() - this.#t0) / 1000;
    const eta = done ? s / done * (total - done) : 0;
    const line = `[${"#".repeat(fill)}${".".repeat(width - fill)}] ${done}/${total} ` +
      `${s.toFixed(0)} s, ~${eta.toFixed(0)} s left  ${name}`;
    let cols = 80;
    try {
      cols = Deno.consoleSize().columns || cols;
    } catch {
      // not a console after all: keep 80 columns
    }
    Deno.stderr.writeSync(this.#enc.encode(`\r\x1b[K${line.slice(0, cols - 1)}`));
    this.#shown = true;
  }

  clear(): void {
    if (this.#shown) Deno.stderr.writeSync(this.#enc.encode("\r\x1b[K"));
    this.#shown = false;
  }
}
