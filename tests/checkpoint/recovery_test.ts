import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert";
import { join } from "node:path";
import { sealCheckpoint, verifyCheckpoint } from "../../src/checkpoint/manifest.ts";
import {
  checkpointFolders,
  chooseResume,
  moveAsideFailed,
  pruneVerified,
  removeStaleTemps,
  type VerifyCache,
} from "../../src/checkpoint/recovery.ts";
import { readTrainState, stepDirName } from "../../src/checkpoint/train_checkpoint.ts";
import { convertCheckpoint } from "../../src/checkpoint/convert.ts";

const FILES = ["model.safetensors", "optimizer.safetensors", "state.json"];

/** A checkpoint folder of random files (no GPU), sealed as saveCheckpoint seals it. */
async function fakeCheckpoint(root: string, step: number): Promise<string> {
  const dir = join(root, stepDirName(step));
  await Deno.mkdir(dir, { recursive: true });
  for (const f of FILES) {
    await Deno.writeFile(join(dir, f), crypto.getRandomValues(new Uint8Array(4096 + step)));
  }
  await sealCheckpoint(dir, step, FILES);
  return dir;
}

async function flipByte(path: string, at: number): Promise<void> {
  const b = await Deno.readFile(path);
  b[at]! ^= 0x01;
  await Deno.writeFile(path, b);
}

async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(e.name);
    if (e.isDirectory) out.push(...(await listing(join(dir, e.name))).map((n) => `${e.name}/${n}`));
  }
  return out.sort();
}

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "ps3-recovery-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("verifyCheckpoint() passes a sealed checkpoint and names each damaged file and why", async () => {
  await withRoot(async (root) => {
    const dir = await fakeCheckpoint(root, 4);
    const good = await verifyCheckpoint(dir);
    deepStrictEqual([good.step, good.complete, good.verified, good.problems], [4, true, true, []]);
    await flipByte(join(dir, "model.safetensors"), 100);
    await flipByte(join(dir, "optimizer.safetensors"), 4000);
    const bad = await verifyCheckpoint(dir);
    strictEqual(bad.verified, false);
    strictEqual(bad.problems.length, 2);
    match(bad.problems[0]!, /^model\.safetensors: digest mismatch/);
    match(bad.problems[1]!, /^optimizer\.safetensors: digest mismatch/);
  });
});

Deno.test("verifyCheckpoint() reports truncated, missing and unsealed files", async () => {
  await withRoot(async (root) => {
    const dir = await fakeCheckpoint(root, 2);
    await Deno.truncate(join(dir, "model.safetensors"), 1000);
    await Deno.remove(join(dir, "state.json"));
    const s = await verifyCheckpoint(dir);
    deepStrictEqual(s.problems, [
      "model.safetensors: truncated (1000 of 4098 bytes)",
      "state.json: missing",
    ]);
    await Deno.remove(join(dir, "COMPLETE"));
    const u = await verifyCheckpoint(dir);
    deepStrictEqual([u.complete, u.verified], [false, false]);
    match(u.problems[0]!, /^COMPLETE: missing/);
    await Deno.writeTextFile(join(dir, "COMPLETE"), '{"format": "ps3-checkpoint-man');
    match((await verifyCheckpoint(dir)).problems[0]!, /^COMPLETE: not a valid manifest/);
    await Deno.writeTextFile(join(dir, "COMPLETE"), "ok\n"); // an earlier ps3's marker
    const legacy = await verifyCheckpoint(dir);
    deepStrictEqual([legacy.complete, legacy.verified, legacy.legacy], [true, false, true]);
  });
});

Deno.test("chooseResume('latest') falls back past damaged checkpoints and says so", async () => {
  await withRoot(async (root) => {
    await fakeCheckpoint(root, 2);
    const s4 = await fakeCheckpoint(root, 4);
    const s6 = await fakeCheckpoint(root, 6);
    const s8 = await fakeCheckpoint(root, 8);
    const s10 = await fakeCheckpoint(root, 10);
    await Deno.remove(join(s10, "model.safetensors"));
    await flipByte(join(s8, "optimizer.safetensors"), 7);
    await Deno.truncate(join(s6, "model.safetensors"), 10);
    const log: string[] = [];
    const cache: VerifyCache = new Map();
    strictEqual(await chooseResume("latest", root, { log: (s) => log.push(s), cache }), s4);
    strictEqual(log.length, 3);
    match(log[0]!, /step_00000010": model\.safetensors: missing/);
    match(log[1]!, /step_00000008": optimizer\.safetensors: digest mismatch/);
    match(log[2]!, /step_00000006": model\.safetensors: truncated \(10 of 4102 bytes\)/);
    // The skipped ones are moved aside (not deleted) before a save can replace them.
    const moved = await moveAsideFailed(root, cache);
    deepStrictEqual(moved.map((m) => m.from).sort(), [s6, s8, s10]);
    deepStrictEqual((await checkpointFolders(root)).map((c) => c.step), [4, 2]);
    ok((await listing(join(root, "unreadable"))).some((n) => /^step_00000008\.\d+\//.test(n)));
  });
});

Deno.test("chooseResume(<folder>) never falls back: a damaged or missing folder is refused", async () => {
  await withRoot(async (root) => {
    await fakeCheckpoint(root, 2);
    const s4 = await fakeCheckpoint(root, 4);
    strictEqual(await chooseResume(s4, root), s4);
    await flipByte(join(s4, "model.safetensors"), 2000);
    await rejects(
      chooseResume(s4, root),
      /Cannot resume from ".*step_00000004": it fails verification: model\.safetensors: digest mismatch/,
    );
    await rejects(chooseResume("/does/not/exist", root), /"\/does\/not\/exist": no such folder/);
    await Deno.remove(join(s4, "COMPLETE"));
    await rejects(chooseResume(s4, root), /not a complete checkpoint \(no COMPLETE marker\)/);
  });
});

Deno.test("chooseResume('latest') refuses when no checkpoint verifies, and changes nothing", async () => {
  await withRoot(async (root) => {
    strictEqual(await chooseResume("latest", join(root, "none")), null);
    const s2 = await fakeCheckpoint(root, 2);
    const s4 = await fakeCheckpoint(root, 4);
    await flipByte(join(s2, "state.json"), 1);
    await Deno.remove(join(s4, "COMPLETE"));
    const before = await listing(root);
    await rejects(
      chooseResume("latest", root),
      /none of its 2 checkpoint\(s\) verifies .*step_00000004": COMPLETE: missing.*step_00000002": state\.json: digest mismatch/,
    );
    deepStrictEqual(await listing(root), before);
  });
});

Deno.test("pruneVerified() deletes only verified checkpoints beyond keep, moves damaged ones aside", async () => {
  await withRoot(async (root) => {
    const s = [];
    for (const step of [1, 2, 3, 4, 5]) s.push(await fakeCheckpoint(root, step));
    await flipByte(join(s[4]!, "model.safetensors"), 5); // the newest is damaged
    await flipByte(join(s[1]!, "model.safetensors"), 5);
    const log: string[] = [];
    const r = await pruneVerified(root, 2, { log: (x) => log.push(x) });
    deepStrictEqual(r.deleted, [s[0]]);
    deepStrictEqual(r.movedAside.map((m) => m.from), [s[4], s[1]]);
    strictEqual(log.length, 2);
    match(log[0]!, /moved checkpoint ".*step_00000005" aside to ".*unreadable.*digest mismatch/);
    // The two newest verified checkpoints stay.
    deepStrictEqual((await checkpointFolders(root)).map((c) => c.step), [4, 3]);
    strictEqual((await verifyCheckpoint(s[3]!)).verified, true);
  });
});

Deno.test("removeStaleTemps() removes the temporary folders of dead writers only", async () => {
  await withRoot(async (root) => {
    const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: never a live process
    try {
      const live = join(root, `step_00000004.tmp-${sleeper.pid}-abcd1234`);
      const stale = join(root, `step_00000004.tmp-${dead}-abcd1234`);
      const mine = join(root, `step_00000006.tmp-${Deno.pid}-abcd1234`);
      for (const d of [live, stale, mine]) await Deno.mkdir(d);
      deepStrictEqual((await removeStaleTemps(root)).sort(), [stale, mine].sort());
      deepStrictEqual(await listing(root), [`step_00000004.tmp-${sleeper.pid}-abcd1234`]);
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
    }
  });
});

Deno.test("readTrainState() names the file of a missing or truncated state.json", async () => {
  await withRoot(async (root) => {
    await rejects(
      readTrainState(root),
      /Cannot read checkpoint state ".*state\.json": the file is missing/,
    );
    await Deno.writeTextFile(join(root, "state.json"), '{"format": "ps3-train-checkpoint", "st');
    await rejects(
      readTrainState(root),
      /Cannot read checkpoint state ".*state\.json": it is not valid JSON/,
    );
  });
});

Deno.test("convertCheckpoint() refuses a checkpoint that fails verification, naming the file", async () => {
  await withRoot(async (root) => {
    const dir = await fakeCheckpoint(root, 3);
    await flipByte(join(dir, "model.safetensors"), 3000);
    await rejects(
      convertCheckpoint(dir, join(root, "hf")),
      /Cannot convert ".*step_00000003": model\.safetensors: digest mismatch/,
    );
    await rejects(Deno.stat(join(root, "hf")), Deno.errors.NotFound);
  });
});

Deno.test("ps3 verify prints a table and exits 0 when all verify, 1 when one fails", async () => {
  await withRoot(async (root) => {
    const ckpts = join(root, "checkpoints");
    await fakeCheckpoint(ckpts, 2);
    const s4 = await fakeCheckpoint(ckpts, 4);
    const verify = async (path: string) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "main.ts", "verify", path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: r.code, out: new TextDecoder().decode(r.stdout) };
    };
    const ok0 = await verify(root);
    strictEqual(ok0.code, 0, ok0.out);
    const lines = ok0.out.trim().split("\n");
    match(lines[0]!, /^step\s+complete\s+verified\s+size\s+checkpoint\s+problem$/);
    match(lines[1]!, /^\s*2\s+yes\s+yes\s+12\.\d KiB\s+.*step_00000002$/);
    match(lines[3]!, /2 of 2 checkpoint\(s\) verified/);
    await flipByte(join(s4, "state.json"), 9);
    const bad = await verify(root);
    strictEqual(bad.code, 1);
    match(bad.out, /\n\s*4\s+yes\s+NO\s+.*step_00000004\s+state\.json: digest mismatch/);
    strictEqual((await verify(join(ckpts, "step_00000002"))).code, 0); // one checkpoint
    strictEqual((await verify(join(root, "nothing"))).code, 2);
  });
});
