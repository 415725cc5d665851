/**
 * The peer-runtime point of the matmul comparison: an n x n x n float32 matmul in jax-js
 * (npm `@jax-js/jax`) on its WebGPU device (the same adapter ps3 uses) and its Wasm CPU
 * device. Run as a separate process by `ps3 bench` (see {@linkcode benchJaxMatmul}), so
 * jax-js stays out of ps3's module graph and its GPU device out of ps3's process:
 *
 * ```sh
 * deno run -A --no-lock src/bench/jax_matmul.ts 1024 webgpu,wasm
 * ```
 *
 * Prints one JSON line per device: `{"device", "ms", "gflops"}` or `{"device", "error"}`.
 *
 * @module
 */

/** The jax-js release the comparison was measured with (an npm package and version). */
export const JAX_JS: readonly [string, string] = ["@jax-js/jax", "0.1.25"];

/** One device's result. */
export interface JaxResult {
  /** jax-js device name. */
  device: string;
  /** Median milliseconds per matmul, when it ran. */
  ms?: number | undefined;
  /** GFLOP/s at that time. */
  gflops?: number | undefined;
  /** Why it did not run. */
  error?: string | undefined;
}

/** The few jax-js calls used here (the package is imported dynamically, untyped). */
interface JaxArray {
  readonly ref: JaxArray;
  blockUntilReady(): Promise<JaxArray>;
  data(): Promise<ArrayLike<number>>;
  dispose(): void;
}
interface JaxModule {
  init(...devices: string[]): Promise<string[]>;
  jit(fn: (x: JaxArray, y: JaxArray) => JaxArray): (x: JaxArray, y: JaxArray) => JaxArray;
  numpy: {
    array(data: Float32Array, opts: { shape: number[]; device: string }): JaxArray;
    matmul(x: JaxArray, y: JaxArray): JaxArray;
  };
}

/**
 * Times jax-js matmuls on the given devices (in this process).
 *
 * @param n Matrix side.
 * @param devices jax-js devices, e.g. ["webgpu", "wasm"].
 * @param runs Timed runs per device (the median is kept).
 * @returns One result per device.
 */
export async function timeJaxMatmul(
  n: number,
  devices: readonly string[],
  runs = 5,
): Promise<JaxResult[]> {
  // The adapter: the parent ps3 process passes its DENO_WEBGPU_BACKEND choice down.
  if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  // Composed at run time, so no tool resolves it statically into ps3's module graph.
  const spec = `npm:${JAX_JS.join("@")}`;
  const jax = (await import(spec)) as JaxModule;
  const available = await jax.init(...devices);
  const out: JaxResult[] = [];
  for (const device of devices) {
    if (!available.includes(device)) {
      out.push({ device, error: "not available in this runtime" });
      continue;
    }
    const a0 = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const b0 = new Float32Array(n * n).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
    const a = jax.numpy.array(a0, { shape: [n, n], device });
    const b = jax.numpy.array(b0, { shape: [n, n], device });
    const f = jax.jit((x, y) => jax.numpy.matmul(x, y));
    const first = f(a.ref, b.ref);
    const c = await first.data();
    // One element against a float64 dot product: the comparison is of a correct matmul.
    let want = 0;
    for (let k = 0; k < n; k++) want += a0[k]! * b0[k * n]!;
    if (Math.abs(c[0]! - want) > 1e-3 * (1 + Math.abs(want))) {
      out.push({ device, error: `wrong result: C[0,0] = ${c[0]}, expected ${want}` });
      continue;
    }
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const y = f(a.ref, b.ref);
      await y.blockUntilReady();
      times.push(performance.now() - t0);
      y.dispose();
    }
    times.sort((x, y) => x - y);
    const ms = times[times.length >> 1]!;
    out.push({ device, ms, gflops: (2 * n ** 3) / ms / 1e6 });
    a.dispose();
    b.dispose();
  }
  return out;
}

/**
 * Runs this file in a child Deno process and collects its results; any failure (no `deno`
 * executable, as in a compiled ps3; no network for the first download) becomes an error
 * entry rather than an exception.
 *
 * @param n Matrix side.
 * @param devices jax-js devices.
 * @returns One result per device.
 */
export async function benchJaxMatmul(n: number, devices: readonly string[]): Promise<JaxResult[]> {
  const fail = (error: string) => devices.map((device) => ({ device, error }));
  const exe = Deno.execPath();
  if (!/deno(\.exe)?$/.test(exe)) return fail(`needs the deno executable (running as ${exe})`);
  const script = new URL(import.meta.url);
  if (script.protocol !== "file:") return fail("the bench script is not a local file");
  const config = new URL("../../deno.json", import.meta.url);
  try {
    const cmd = new Deno.Command(exe, {
      // --no-lock: jax-js is not one of ps3's dependencies and stays out of deno.lock.
      args: [
        "run",
        "-A",
        "--no-lock",
        "--config",
        config.pathname,
        script.pathname,
        String(n),
        devices.join(","),
      ],
      stdout: "piped",
      stderr: "piped",
    });
    const res = await cmd.output();
    const text = new TextDecoder().decode(res.stdout);
    const lines = text.split("\n").filter((l) => l.startsWith("{"));
    if (!res.success || lines.length === 0) {
      const err = new TextDecoder().decode(res.stderr).trim().split("\n").slice(-3).join(" / ");
      return fail(`child process failed (${res.code}): ${err || "no output"}`);
    }
    return lines.map((l) => JSON.parse(l) as JaxResult);
  } catch (e) {
    return fail((e as Error).message);
  }
}

if (import.meta.main) {
  const n = Number(Deno.args[0] ?? 1024);
  const devices = (Deno.args[1] ?? "webgpu,wasm").split(",");
  for (const r of await timeJaxMatmul(n, devices)) console.log(JSON.stringify(r));
  // jax-js keeps its GPU device alive; leave without waiting for it.
  Deno.exit(0);
}
