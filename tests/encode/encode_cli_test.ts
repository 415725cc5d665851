import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { join } from "node:path";
import { main } from "../../main.ts";
import { rejectsWith, withTmp } from "../data/helpers.ts";
import { DOCK_SMALL, writeTinyModel } from "./helpers.ts";
import { initGpu } from "../../src/gpu/runtime.ts";
import { decodeImage } from "../../src/data/formats/image.ts";

await initGpu();
const root = await Deno.makeTempDir({ prefix: "ps3_encode_cli_" });
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
const MODEL = join(root, "tiny");
await writeTinyModel(MODEL, { conv: true, seed: 2 });

/** Runs `ps3 ...` with the console captured and standard error not a terminal (plain
 * progress lines instead of the bar). */
async function ps3(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  const tty = Object.getOwnPropertyDescriptor(Deno.stderr, "isTerminal");
  Object.defineProperty(Deno.stderr, "isTerminal", { value: () => false, configurable: true });
  try {
    const code = await main(args);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
    if (tty) Object.defineProperty(Deno.stderr, "isTerminal", tty);
    else delete (Deno.stderr as { isTerminal?: unknown }).isTerminal;
  }
}

Deno.test("ps3 encode writes the files of one image and prints token counts per scale", async () => {
  await withTmp(async (dir) => {
    const out = join(dir, "dock");
    const r = await ps3([
      "encode",
      DOCK_SMALL,
      "--checkpoint",
      MODEL,
      "--num-tokens",
      "50",
      "--keep-aspect",
      "--prompt",
      "a red boat",
      "--display-size",
      "150",
      "--out",
      out,
    ]);
    assertEquals(r.code, 0);
    const files = [];
    for await (const e of Deno.readDir(out)) files.push(e.name);
    assertEquals(files.length, 6);
    const png = await Deno.readFile(join(out, "selection_prob_scale_2.png"));
    const pic = decodeImage(png, { file: "p.png", maxPixels: 1e6 }).image;
    assertEquals([pic.width, pic.height], [150, 100]);
    assert(r.out.includes('300x200 -> input 128x85 (keep-aspect), top-down "a red boat"'), r.out);
    assert(/scale 2 +128 px +grid 16x8 +40 tokens of 128 patches/.test(r.out), r.out);
    assert(r.out.includes("total 66 tokens"), r.out);
    const summary = JSON.parse(await Deno.readTextFile(join(out, "summary.json")));
    assertEquals([summary.lookClose, summary.rounds, summary.tokens], ["tokens:50", 3, 66]);
  });
});

Deno.test("ps3 encode runs a folder with one line per image and fails when an image is unreadable", async () => {
  await withTmp(async (dir) => {
    await Deno.writeFile(join(dir, "a.jpg"), Deno.readFileSync(DOCK_SMALL));
    await Deno.writeFile(join(dir, "b.png"), new TextEncoder().encode("not a png"));
    const r = await ps3(["encode", dir, "--checkpoint", MODEL, "--out", join(dir, "out")]);
    assertEquals(r.code, 1);
    assert(r.out.includes(`[1/2] ${join(dir, "a.jpg")}: 36 tokens`), r.out);
    assert(r.err.includes(`skipped: Cannot use "${join(dir, "b.png")}"`), r.err);
    assert(r.out.includes("encoded 1 of 2 images"), r.out);
  });
});

Deno.test("ps3 encode reports bad arguments and paths clearly", async () => {
  assertEquals((await ps3(["encode", DOCK_SMALL])).code, 2);
  const missing = join(root, "missing.jpg");
  let e = await rejectsWith(() => ps3(["encode", missing, "--checkpoint", MODEL]), Error);
  assert(e.message.startsWith(`Cannot encode "${missing}"`), e.message);
  e = await rejectsWith(
    () =>
      ps3([
        "encode",
        DOCK_SMALL,
        "--checkpoint",
        MODEL,
        "--num-look-close",
        "2",
        "--num-tokens",
        "5",
      ]),
    Error,
  );
  assert(e.message.includes("--num-look-close and --num-tokens together"), e.message);
  e = await rejectsWith(
    () => ps3(["encode", DOCK_SMALL, "--checkpoint", MODEL, "--num-tokens", "many"]),
    RangeError,
  );
  assert(e.message.includes('--num-tokens "many"'), e.message);
  e = await rejectsWith(
    () => ps3(["encode", DOCK_SMALL, "--checkpoint", join(root, "nope")]),
    Error,
  );
  assert(e.message.startsWith(`Cannot load model "${join(root, "nope")}"`), e.message);
});
