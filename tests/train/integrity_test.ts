import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import { join } from "node:path";
import { verifyCheckpoint } from "../../src/checkpoint/manifest.ts";
import { openSafetensors } from "../../src/checkpoint/safetensors.ts";

// Every run is its own `ps3 train` process, as kills, signals and crashes need.
const config = "tests/testdata/train_tiny.yaml";
const synth = await Deno.makeTempDir({ prefix: "ps3-integrity-synth-" });
const dec = new TextDecoder();

function trainCommand(out: string, extra: string[], env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "train",
      config,
      `--checkpoint.out=${out}`,
      `--data.synthesize.out=${synth}`,
      "--no-progress",
      ...extra,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  });
}

async function ps3Train(
  out: string,
  extra: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await trainCommand(out, extra, env).output();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** Starts a run, sends `signals` once a line matching `when` is printed, returns the outcome. */
async function signalled(
  out: string,
  extra: string[],
  when: RegExp,
  signals: Deno.Signal[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = trainCommand(out, extra).spawn();
  let stdout = "";
  let sent = false;
  const stderr = new Response(child.stderr).text();
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (!sent && when.test(stdout)) {
      sent = true;
      for (const s of signals) child.kill(s);
    }
  }
  const { code } = await child.status;
  return { code, stdout, stderr: await stderr };
}

async function losses(out: string): Promise<number[][]> {
  const text = await Deno.readTextFile(join(out, "metrics.jsonl"));
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
    .filter((r) => typeof r.loss === "number")
    .map((r) => [r.step, r.loss, r.prior_box, r.posterior_box]);
}

/** Flips one byte inside the data of the first tensor of a safetensors file. */
async function flipTensorByte(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  bytes[8 + headerLen + 17]! ^= 0x40;
  await Deno.writeFile(path, bytes);
}

async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(e.name);
    if (e.isDirectory) out.push(...(await listing(join(dir, e.name))).map((n) => `${e.name}/${n}`));
  }
  return out.sort();
}

async function tensors(path: string): Promise<Map<string, Uint8Array>> {
  const r = await openSafetensors(path);
  try {
    return new Map(
      await Promise.all(r.names().map(async (n) => [n, await r.readBytes(n)] as const)),
    );
  } finally {
    r.close();
  }
}

const straight = await Deno.makeTempDir({ prefix: "ps3-integrity-straight-" });
const first = await ps3Train(straight, []);
strictEqual(first.code, 0, first.stderr);
const reference = await losses(straight);
const ck = (out: string, step: number) =>
  join(out, "checkpoints", `step_${String(step).padStart(8, "0")}`);

Deno.test("SIGTERM finishes the step, checkpoints and exits 143; a torn metrics line is dropped at resume", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-sigterm-" });
  const r = await signalled(out, [], /step 3\/6/, ["SIGTERM"]);
  strictEqual(r.code, 143, r.stderr);
  match(r.stdout, /SIGTERM: stopping after this step with a checkpoint/);
  const stopped = /checkpoint: (.*step_(\d+))/.exec(r.stdout);
  ok(stopped, r.stdout);
  ok(Number(stopped[2]) >= 3 && Number(stopped[2]) < 6, stopped[0]);
  strictEqual((await verifyCheckpoint(stopped[1]!)).verified, true);
  // A power loss cuts the last append short.
  await Deno.writeTextFile(join(out, "metrics.jsonl"), '{"step":9,"lo', { append: true });
  const resumed = await ps3Train(out, ["--resume", "latest"]);
  strictEqual(resumed.code, 0, resumed.stderr);
  match(resumed.stderr, /Dropping the last line of ".*metrics\.jsonl"/);
  deepStrictEqual(await losses(out), reference);
});

Deno.test("SIGHUP checkpoints and exits 129, the resume is identical, resuming the finished run changes nothing", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-sighup-" });
  const r = await signalled(out, [], /step 2\/6/, ["SIGHUP"]);
  strictEqual(r.code, 129, r.stderr);
  strictEqual((await ps3Train(out, ["--resume", "latest"])).code, 0);
  deepStrictEqual(await losses(out), reference);
  const final = await tensors(join(ck(out, 6), "optimizer.safetensors"));
  deepStrictEqual(final, await tensors(join(ck(straight, 6), "optimizer.safetensors")));
  const summary = await Deno.readTextFile(join(out, "summary.json"));
  const before = await listing(out);
  const again = await ps3Train(out, ["--resume", "latest"]);
  strictEqual(again.code, 0, again.stderr);
  match(again.stdout, /the run already finished at step 6 .*nothing was changed/);
  strictEqual(await Deno.readTextFile(join(out, "summary.json")), summary);
  deepStrictEqual(await listing(out), before);
});

Deno.test("a second signal exits at once", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-sigint2-" });
  const child = trainCommand(out, []).spawn();
  const stderr = new Response(child.stderr).text();
  let stdout = "", sent = 0;
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (sent === 0 && /step 1\/6/.test(stdout)) {
      child.kill("SIGINT");
      sent = 1;
    } else if (sent === 1 && /SIGINT: stopping after this step/.test(stdout)) {
      child.kill("SIGINT");
      sent = 2;
    }
  }
  strictEqual((await child.status).code, 130);
  match(await stderr, /SIGINT again: exiting now without a checkpoint/);
});

Deno.test("flipped bits in model and optimizer data: latest falls back, an explicit resume is refused", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-bitflip-" });
  strictEqual((await ps3Train(out, [], { PS3_FAULT: "exit-after=5" })).code, 137);
  await flipTensorByte(join(ck(out, 4), "model.safetensors"));
  await flipTensorByte(join(ck(out, 4), "optimizer.safetensors"));
  const explicit = await ps3Train(out, ["--resume", ck(out, 4)]);
  strictEqual(explicit.code, 1);
  match(
    explicit.stderr,
    /Cannot resume from ".*step_00000004": it fails verification: model\.safetensors: digest mismatch .*; optimizer\.safetensors: digest mismatch/,
  );
  const latest = await ps3Train(out, ["--resume", "latest"]);
  strictEqual(latest.code, 0, latest.stderr);
  match(
    latest.stdout,
    /skipping checkpoint ".*step_00000004": model\.safetensors: digest mismatch/,
  );
  match(latest.stdout, /resumed from .*step_00000002 at step 2/);
  deepStrictEqual(await losses(out), reference);
  ok(
    (await listing(join(out, "checkpoints", "unreadable"))).some((n) =>
      n.startsWith("step_00000004.")
    ),
  );
});

Deno.test("no checkpoint verifies: resume refused and nothing deleted; a fresh start needs --fresh", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-noverified-" });
  strictEqual((await ps3Train(out, [], { PS3_FAULT: "exit-after=5" })).code, 137);
  await Deno.remove(join(ck(out, 4), "state.json"));
  await Deno.truncate(join(ck(out, 2), "model.safetensors"), 100);
  await Deno.remove(join(out, "train.lock")); // the killed run's (stale; taken over otherwise)
  const before = await listing(out);
  const r = await ps3Train(out, ["--resume", "latest"]);
  strictEqual(r.code, 1);
  match(
    r.stderr,
    /none of its 2 checkpoint\(s\) verifies .*state\.json: missing.*model\.safetensors: truncated \(100 of/,
  );
  const fresh = await ps3Train(out, []);
  strictEqual(fresh.code, 1);
  match(
    fresh.stderr,
    /Cannot start a new run in ".*": it already holds a run \(2 checkpoint\(s\).*--fresh/,
  );
  deepStrictEqual(await listing(out), before);
  const forced = await ps3Train(out, ["--fresh"]);
  strictEqual(forced.code, 0, forced.stderr);
  deepStrictEqual(await losses(out), reference);
  const aside = (await listing(out)).filter((n) =>
    /^previous-[^/]*\/checkpoints\/step_00000004\/COMPLETE$/.test(n)
  );
  strictEqual(aside.length, 1);
});

Deno.test("two trainers on one run folder: the second is refused, naming the first", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-two-" });
  // A long run, stopped with SIGTERM once the second trainer has been refused.
  const a = trainCommand(out, ["--train.steps=1000"]).spawn();
  let stdout = "";
  const stderrA = new Response(a.stderr).text();
  let second: { code: number; stdout: string; stderr: string } | null = null;
  for await (const chunk of a.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (!second && /step 1\/1000/.test(stdout)) {
      second = await ps3Train(out, ["--resume", "latest"]);
      a.kill("SIGTERM");
    }
  }
  strictEqual((await a.status).code, 143, await stderrA);
  ok(second);
  strictEqual(second.code, 1);
  match(second.stderr, new RegExp(`another trainer holds it \\(process ${a.pid} on `));
  // One history: every step once, in order.
  const steps = (await losses(out)).map((l) => l[0]!);
  deepStrictEqual(steps, steps.map((_, i) => i + 1));
  ok(steps.length >= 1);
});

Deno.test("disk full: a clear error with the space needed and free; the previous checkpoint still verifies", async () => {
  const mnt = await Deno.makeTempDir({ prefix: "ps3-tmpfs-" });
  // Room for one tiny checkpoint (~1 MiB) but not for the estimate of a second (~2 MiB).
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
    stdout: "null",
    stderr: "piped",
  }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  if (!mount.success) {
    console.log(`skipped: cannot mount a small tmpfs here (${dec.decode(mount.stderr).trim()})`);
    return;
  }
  try {
    const r = await ps3Train(mnt, []);
    strictEqual(r.code, 1, r.stderr);
    match(
      r.stderr,
      /Cannot save checkpoint ".*step_00000004": it needs about .* \(\d+ bytes\) and the disk of ".*" has .* \(\d+ bytes\) free/,
    );
    const s = await verifyCheckpoint(ck(mnt, 2));
    strictEqual(s.verified, true, s.problems.join("; "));
    ok(!(await listing(join(mnt, "checkpoints"))).some((n) => n.includes(".tmp-")));
  } finally {
    await new Deno.Command("umount", { args: [mnt] }).output();
    await Deno.remove(mnt, { recursive: true });
  }
});
