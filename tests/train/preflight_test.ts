import { ok, rejects, strictEqual } from "node:assert";
import { join } from "node:path";
import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { train } from "../../src/train/trainer.ts";

const rt = await initGpu();

Deno.test("train() names every missing input by its config key before allocating anything", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3-preflight-" });
  try {
    // Shard 1 of 3 exists (an empty tar: two zero blocks); the rest, the tokenizer and the
    // SigLIP file do not.
    await Deno.writeFile(join(dir, "img_1.tar"), new Uint8Array(1024));
    const config = await loadRunConfig("tests/testdata/train_tiny.yaml", [
      "data.synthesize=null",
      `data.images=${join(dir, "img_{0..2}.tar")}`,
      `data.text_boxes=${join(dir, "txt_{0..2}.tar")}`,
      `data.tokenizer=${join(dir, "tokenizer.json")}`,
      `checkpoint.out=${join(dir, "run")}`,
      `checkpoint.init_siglip=${join(dir, "siglip.safetensors")}`,
    ]);
    const before = rt.memory().inUseBytes;
    await rejects(train(config, { tty: false }), (e: Error) => {
      const lines = e.message.split("\n");
      ok(lines[0]!.includes("4 input(s)"), e.message);
      ok(lines.some((l) => l.includes("data.images: 2 of 3 shards")), e.message);
      ok(lines.some((l) => l.includes("data.text_boxes: 3 of 3 shards")), e.message);
      ok(lines.some((l) => l.includes("data.tokenizer:") && l.includes("tokenizer.json")));
      ok(lines.some((l) => l.includes("checkpoint.init_siglip:") && l.includes("siglip")));
      return true;
    });
    strictEqual(rt.memory().inUseBytes, before, "nothing was allocated");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() refuses a run over train.memory_limit_gb before allocating the model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3-preflight-mem-" });
  try {
    const config = await loadRunConfig("tests/testdata/train_tiny.yaml", [
      `data.synthesize.out=${join(dir, "synth")}`,
      `checkpoint.out=${join(dir, "run")}`,
      "train.memory_limit_gb=0.001",
    ]);
    const before = rt.memory().inUseBytes;
    await rejects(
      train(config, { tty: false }),
      (e: Error) =>
        e instanceof RangeError && e.message.includes("train.memory_limit_gb allows") &&
        e.message.includes("train.batch_size"),
    );
    strictEqual(rt.memory().inUseBytes, before, "nothing was allocated");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
