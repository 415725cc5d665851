// The PyTorch checkpoint reader: torch.save files made with the local torch
// (tests/testdata/torch_ckpt/make.py) read bit-exactly; hand-made hostile pickles and broken
// zips are refused, each with its message.
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert";
import { join } from "node:path";
import { openSafetensors } from "../../src/checkpoint/safetensors.ts";
import { openWeightsFile, TorchCheckpoint } from "../../src/checkpoint/torch_checkpoint.ts";
import { unpickle } from "../../src/checkpoint/pickle.ts";
import { withTmp } from "../data/helpers.ts";
import { makeZip, pkl, str, torchStateDictZip, u32 } from "./torch_fixtures.ts";

const dir = new URL("../testdata/torch_ckpt/", import.meta.url).pathname;

/** A state dict {"w": FloatStorage tensor of `numel` elements viewed as `size`}. */
function tensorPickle(numel: number, size: number, offset = 0): Uint8Array {
  const parts = [
    pkl([0x80, 2], "ccollections\nOrderedDict\n)R"),
    str("w"),
    pkl("ctorch._utils\n_rebuild_tensor_v2\n("),
    pkl("(", str("storage"), "ctorch\nFloatStorage\n", str("0"), str("cpu"), "K", [numel], "tQ"),
    pkl("K", [offset], "K", [size], [0x85], "K", [1], [0x85], [0x89]),
    pkl("ccollections\nOrderedDict\n)R"),
    pkl("tRs."),
  ];
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
  let p = 0;
  for (const b of parts) (out.set(b, p), p += b.length);
  return out;
}

async function openBytes(bytes: Uint8Array, fn: (path: string) => Promise<void>) {
  await withTmp(async (d) => {
    const path = join(d, "x.pt");
    await Deno.writeFile(path, bytes);
    await fn(path);
  });
}

Deno.test("a torch.save state dict of every dtype, views and offsets reads bit-exactly", async () => {
  const ck = await TorchCheckpoint.open(join(dir, "dtypes.pt"));
  const want = await openSafetensors(join(dir, "dtypes_expected.safetensors"));
  try {
    const r = ck.weights();
    assertEquals(r.names(), [
      "f32",
      "f16",
      "bf16",
      "i64",
      "scalar",
      "param",
      "transposed",
      "offset_slice",
      "shared_a",
      "shared_b",
      "empty",
    ]);
    for (const name of r.names()) {
      const e = want.entry(name);
      assertEquals(r.entry(name), { name, dtype: e.dtype, shape: e.shape });
      const got = await r.read(name), exp = await want.read(name);
      assertEquals(got.constructor, exp.constructor, name);
      // Compare the bits (NaN-safe, -0 distinct).
      assertEquals(
        new Uint8Array(got.buffer, got.byteOffset, got.byteLength),
        new Uint8Array(exp.buffer, exp.byteOffset, exp.byteLength),
        name,
      );
    }
    assertEquals([...(await r.read("i64") as BigInt64Array)], [0n, -1n, 2n ** 40n, -(2n ** 50n)]);
  } finally {
    want.close();
    ck.close();
  }
});

Deno.test("openWeightsFile() tells torch zips from safetensors by their first bytes", async () => {
  const a = await openWeightsFile(join(dir, "open_clip_pytorch_model.bin"));
  const b = await openWeightsFile(join(dir, "dtypes_expected.safetensors"));
  try {
    assertEquals(a.entry("visual.trunk.pos_embed").dtype, "BF16");
    assertEquals(b.entry("f16").dtype, "F16");
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("an open_clip training checkpoint: state_dict with the module. prefix dropped; plain fields kept", async () => {
  const ck = await TorchCheckpoint.open(join(dir, "epoch_1.pt"));
  try {
    const root = ck.root as Map<string, unknown>;
    assertEquals(root.get("epoch"), 1);
    assertEquals(root.get("name"), "ps3-tiny-test");
    const sd = ck.stateDict();
    ok(sd.has("visual.trunk.pos_embed") && sd.has("logit_scale"), [...sd.keys()].join(","));
    const opt = root.get("optimizer") as Map<string, unknown>;
    const groups = opt.get("param_groups") as Map<string, unknown>[];
    assertEquals(groups.length, 2);
    assertEquals(groups[0]!.get("betas"), [0.9, 0.95]);
  } finally {
    ck.close();
  }
});

Deno.test("a ZIP64 container (sizes and offsets in ZIP64 records) reads like a plain one", async () => {
  const data = new Float32Array([1.5, -2, 3]);
  for (const zip64 of [false, true]) {
    const zip = makeZip({
      "archive/data.pkl": tensorPickle(3, 3),
      "archive/data/0": new Uint8Array(data.buffer),
    }, { zip64 });
    await openBytes(zip, async (path) => {
      const ck = await TorchCheckpoint.open(path);
      try {
        assertEquals([...(await ck.weights().read("w") as Float32Array)], [...data]);
      } finally {
        ck.close();
      }
    });
  }
});

const HOSTILE: [string, Uint8Array, RegExp][] = [
  [
    "GLOBAL of os.system (the classic exploit)",
    pkl([0x80, 2], "cos\nsystem\n", str("echo pwned"), [0x85], "R."),
    /references os\.system, which is not allowed/,
  ],
  [
    "GLOBAL of posix.system (how Linux pickles os.system)",
    pkl([0x80, 2], "cposix\nsystem\n", str("id"), [0x85], "R."),
    /references posix\.system/,
  ],
  [
    "STACK_GLOBAL of builtins.eval",
    pkl([0x80, 4], str("builtins"), str("eval"), [0x93], str("1+1"), [0x85], "R."),
    /references builtins\.eval/,
  ],
  [
    "REDUCE of an allowed global that is not a rebuild function",
    pkl([0x80, 2], "ctorch\nFloatStorage\n)R."),
    /REDUCE of torch\.FloatStorage is not allowed/,
  ],
  [
    "REDUCE of a non-callable (a string)",
    pkl([0x80, 2], str("os"), ")R."),
    /REDUCE of string, not an allowed callable/,
  ],
  [
    "NEWOBJ",
    pkl([0x80, 2], "ccollections\nOrderedDict\n)", [0x81], "."),
    /opcode NEWOBJ .* is not allowed/,
  ],
  [
    "INST (protocol 0 object building)",
    pkl("(ios\nsystem\n."),
    /opcode INST .* is not allowed/,
  ],
  [
    "BUILD on a list",
    pkl([0x80, 2], "]}b."),
    /BUILD .* not an OrderedDict/,
  ],
  [
    "a storage type outside float32/float16/bfloat16/int64",
    pkl([0x80, 2], "(", str("storage"), "ctorch\nDoubleStorage\n"),
    /references torch\.DoubleStorage, which is not allowed/,
  ],
  [
    "a truncated pickle",
    pkl([0x80, 2], "X", u32(100), "abc"),
    /data\.pkl ends early/,
  ],
];

for (const [what, bytes, message] of HOSTILE) {
  Deno.test(`the unpickler refuses ${what}`, async () => {
    const zip = makeZip({ "archive/data.pkl": bytes });
    await openBytes(zip, async (path) => {
      await rejects(TorchCheckpoint.open(path), (e: Error) => {
        ok(message.test(e.message), e.message);
        ok(e.message.startsWith('Refusing to load "x.pt"'), e.message);
        return true;
      });
    });
  });
}

Deno.test("unpickle() itself never calls what it refuses (no side effects before the error)", () => {
  let called = false;
  (globalThis as Record<string, unknown>).__ps3_probe = () => (called = true);
  try {
    unpickle(pkl([0x80, 2], "cbuiltins\n__ps3_probe\n)R."), "probe.pt");
  } catch {
    // refused, as expected
  }
  ok(!called);
  delete (globalThis as Record<string, unknown>).__ps3_probe;
});

Deno.test("a tensor reaching past its storage is refused (storage out of range)", async () => {
  const zip = makeZip({
    "archive/data.pkl": tensorPickle(3, 3, 1), // elements 1..3 of a 3-element storage
    "archive/data/0": new Uint8Array(12),
  });
  await openBytes(zip, async (path) => {
    await rejects(
      TorchCheckpoint.open(path),
      /reaches element 3 of storage "0", which has 3 \(storage out of range\)/,
    );
  });
});

Deno.test("a storage entry shorter than its element count is refused", async () => {
  const zip = makeZip({
    "archive/data.pkl": tensorPickle(3, 3),
    "archive/data/0": new Uint8Array(8),
  });
  await openBytes(zip, async (path) => {
    await rejects(
      TorchCheckpoint.open(path),
      /storage "0" has 8 bytes, fewer than its 3 F32 elements need \(12/,
    );
  });
});

Deno.test("a storage with no data entry is refused", async () => {
  const zip = makeZip({ "archive/data.pkl": tensorPickle(3, 3) });
  await openBytes(zip, async (path) => {
    await rejects(TorchCheckpoint.open(path), /storage "0" has no "data\/0" entry/);
  });
});

Deno.test("truncated torch.save files are refused with a message naming the file", async () => {
  const bytes = await Deno.readFile(join(dir, "dtypes.pt"));
  for (const keep of [0, 10, 400, bytes.length - 30, bytes.length - 1]) {
    await openBytes(bytes.subarray(0, keep), async (path) => {
      await rejects(TorchCheckpoint.open(path), (e: Error) => {
        ok(e.message.includes("x.pt"), e.message);
        ok(
          /truncated|too short|end-of-central-directory|ends early|past the end/.test(e.message),
          e.message,
        );
        return true;
      });
    });
  }
});

Deno.test("a zip with no data.pkl (not a torch.save file) is refused", async () => {
  await openBytes(makeZip({ "a.txt": new Uint8Array(3) }), async (path) => {
    await rejects(TorchCheckpoint.open(path), /0 "<name>\/data\.pkl" entries/);
  });
});

Deno.test("torchStateDictZip() (the tests' own torch.save writer) reads back, bare and wrapped", async () => {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]), b = new Float32Array([-0.5]);
  for (const wrap of [false, true]) {
    const zip = torchStateDictZip([
      { name: "module.visual.x", shape: [2, 3], data: a },
      { name: "module.logit_scale", shape: [], data: b },
    ], { wrap });
    await openBytes(zip, async (path) => {
      const ck = await TorchCheckpoint.open(path);
      try {
        const r = ck.weights();
        assertEquals(r.names(), ["visual.x", "logit_scale"]);
        assertEquals(r.entry("visual.x").shape, [2, 3]);
        assertEquals(await r.read("visual.x"), a);
        assertEquals(await r.read("logit_scale"), b);
        if (wrap) assertEquals((ck.root as Map<string, unknown>).get("epoch"), 1);
      } finally {
        ck.close();
      }
    });
  }
});
