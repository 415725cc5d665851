import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert";
import { join } from "node:path";
import { LOCK_FILE, RunLock } from "../../src/train/run_lock.ts";

const lockModule = new URL("../../src/train/run_lock.ts", import.meta.url).href;

/** A separate process that takes the lock and then sleeps (until killed). */
async function holder(out: string): Promise<Deno.ChildProcess> {
  const code = `
    import { RunLock } from ${JSON.stringify(lockModule)};
    await RunLock.acquire(${JSON.stringify(out)});
    console.log("locked");
    await new Promise((r) => setTimeout(r, 60_000));`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  strictEqual(new TextDecoder().decode(value).trim(), "locked");
  reader.releaseLock();
  return child;
}

Deno.test("a second trainer is refused while the first holds the run folder; a killed one's lock is taken over", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-lock-" });
  const child = await holder(out);
  try {
    await rejects(
      RunLock.acquire(out),
      new RegExp(`another trainer holds it \\(process ${child.pid} on .* since .*train\\.lock`),
    );
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel();
  }
  // The killed holder left its lock file: stale, taken over, with a note.
  const log: string[] = [];
  const lock = await RunLock.acquire(out, (s) => log.push(s));
  strictEqual(log.length, 1);
  match(log[0]!, new RegExp(`took over the stale lock of process ${child.pid}`));
  strictEqual(JSON.parse(await Deno.readTextFile(join(out, LOCK_FILE))).pid, Deno.pid);
  await lock.release();
  await rejects(Deno.stat(join(out, LOCK_FILE)), Deno.errors.NotFound);
  await Deno.remove(out, { recursive: true });
});

Deno.test("a lock held from another host is never taken over", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-lock-host-" });
  const other = { pid: 1, host: "another-host.example", startTicks: null, since: "2026-01-01" };
  await Deno.writeTextFile(join(out, LOCK_FILE), JSON.stringify(other));
  await rejects(RunLock.acquire(out), /process 1 on another-host\.example/);
  await Deno.remove(out, { recursive: true });
});

Deno.test("one process cannot take the same run folder twice; release frees it", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-lock-self-" });
  {
    await using _lock = await RunLock.acquire(out);
    await rejects(RunLock.acquire(out), new RegExp(`process ${Deno.pid} `));
  }
  // A private file of a process killed while taking the lock is cleaned up.
  const dead = 2 ** 22 + 12345; // above Linux's default pid_max: never a live process
  await Deno.writeTextFile(join(out, `${LOCK_FILE}.${dead}-abcd1234`), "{}");
  const again = await RunLock.acquire(out);
  ok(again.info.pid === Deno.pid);
  deepStrictEqual([...Deno.readDirSync(out)].map((e) => e.name), [LOCK_FILE]);
  await again.release();
  await Deno.remove(out, { recursive: true });
});
