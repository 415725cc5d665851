/**
 * The stop deadline ends a process whose main thread is blocked (the case an unref'd timer on
 * the main event loop cannot handle), and a cancelled one lets the process end normally.
 * Each case runs a child process that arms the deadline and then spins synchronously.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert";

const MODULE = new URL("../../src/train/stop_deadline.ts", import.meta.url).href;

async function child(body: string) {
  const code = `import { armStopDeadline } from "${MODULE}";\n${body}`;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    signal: out.signal,
    seconds: (performance.now() - t0) / 1000,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("an armed stop deadline kills a process whose main thread is blocked", async () => {
  const r = await child(`
armStopDeadline(0.5, "deadline passed");
const t = Date.now();
while (Date.now() - t < 20000) { /* blocked */ }
console.log("the spin finished");
`);
  strictEqual(r.signal, "SIGKILL", `${r.code} ${r.stdout} ${r.stderr}`);
  ok(r.stderr.includes("deadline passed"), r.stderr);
  ok(!r.stdout.includes("the spin finished"), r.stdout);
  ok(r.seconds < 15, `took ${r.seconds} s`);
});

Deno.test("a cancelled stop deadline lets the process finish and exit 0", async () => {
  const r = await child(`
const d = armStopDeadline(1, "deadline passed");
d.cancel();
const t = Date.now();
while (Date.now() - t < 2000) { /* longer than the deadline */ }
console.log("the spin finished");
`);
  strictEqual(r.code, 0, r.stderr);
  ok(r.stdout.includes("the spin finished"), r.stdout);
  ok(!r.stderr.includes("deadline passed"), r.stderr);
});
