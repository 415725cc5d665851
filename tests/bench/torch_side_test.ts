import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import {
  sideBySideRows,
  type TorchBenchJson,
  torchUnavailable,
} from "../../src/bench/torch_side.ts";

const TORCH: TorchBenchJson = {
  torch: "2.13.0+cpu",
  pillow: "12.3.0",
  threads: 2,
  step: { batch: 16, fwd_bwd_ms: 250, fwd_bwd_adamw_ms: 270 },
  matmul: [
    { m: 1024, n: 1024, k: 1024, ms: 20, gflops: 107.4 },
    { m: 729, n: 3456, k: 1152, ms: 40, gflops: 145.1 },
  ],
  data: [
    { processes: 1, ms_per_image: 150, images_per_s: 6.667 },
    { processes: 2, ms_per_image: 80, images_per_s: 12.5 },
  ],
};

Deno.test("sideBySideRows() pairs each work with PyTorch's and states the ratio", () => {
  const rows = sideBySideRows({
    stepMs: 1000,
    matmulMs: [80, 100, 900],
    dataMs: [{ workers: 1, ms: 300 }, { workers: 2, ms: 120 }],
  }, TORCH);
  assertEquals(rows.map((r) => r.name), [
    "side: ps3 tiny step, batch 16 (fwd+loss+bwd)",
    "side: PyTorch tiny step, batch 16 (fwd+loss+bwd)",
    "side: ps3 matmul 1024x1024x1024",
    "side: PyTorch matmul 1024x1024x1024",
    "side: ps3 matmul 729x3456x1152",
    "side: PyTorch matmul 729x3456x1152",
    // 2560x4304x1152 is missing on the PyTorch side: left out.
    "side: ps3 decode+crop+resize JPEG -> 1512^2, 1 worker",
    "side: Pillow decode+crop+resize JPEG -> 1512^2, 1 worker",
    "side: ps3 decode+crop+resize JPEG -> 1512^2, 2 workers",
    "side: Pillow decode+crop+resize JPEG -> 1512^2, 2 workers",
  ]);
  assertEquals(rows[0]!.note, "PyTorch 2.13.0+cpu (2 threads) 250.0 ms: ps3 takes 4.00x as long");
  assertEquals(rows[0]!.rate, 16);
  assertEquals(rows[1]!.note, "with the AdamW step 270.0 ms");
  assert(rows[2]!.note!.endsWith("ps3 takes 4.00x as long"));
  assertEquals(rows[3]!.rate, (2 * 1024 ** 3) / 20 / 1e6);
  assertEquals(rows[6]!.note, "Pillow 12.3.0 6.67 images/s: ps3 takes 2.00x as long");
  assertEquals(rows[8]!.note, "Pillow 12.3.0 12.50 images/s: ps3 takes 1.50x as long");
  assertEquals(rows[9]!.rate, 12.5);
});

Deno.test("sideBySideRows() names the OpenMP wait policy the script ran under", () => {
  const [row] = sideBySideRows({ stepMs: 500 }, { ...TORCH, omp_wait_policy: "PASSIVE" });
  assertEquals(
    row!.note,
    "PyTorch 2.13.0+cpu (2 threads, OMP_WAIT_POLICY=PASSIVE) 250.0 ms: ps3 takes 2.00x as long",
  );
});

Deno.test("sideBySideRows() leaves out work that only one side measured", () => {
  assertEquals(sideBySideRows({ stepMs: 5 }, { ...TORCH, step: undefined }), []);
  assertEquals(sideBySideRows({}, TORCH), []);
});

Deno.test("torchUnavailable() skips under CI and without an interpreter", async () => {
  const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });
  assertEquals(
    await torchUnavailable("python3", env({ CI: "true" })),
    "CI is set (CI never runs Python)",
  );
  const why = await torchUnavailable("/nonexistent/python3", env({}));
  assert(why?.startsWith('cannot run "/nonexistent/python3"'), String(why));
});
