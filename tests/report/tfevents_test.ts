import assert from "node:assert/strict";
import { crc32c } from "../../src/util/crc32c.ts";
import {
  decodeEvent,
  encodeEvent,
  EventFileWriter,
  frameRecord,
  maskedCrc32c,
  readEventFile,
  readRecords,
} from "../../src/report/tfevents.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("maskedCrc32c: rotate right by 15 and add the TFRecord constant", () => {
  const c = crc32c(0, enc("abc"));
  const rot = ((c >>> 15) | (c << 17)) >>> 0;
  assert.equal(maskedCrc32c(enc("abc")), (rot + 0xa282ead8) % 2 ** 32);
});

Deno.test("encodeEvent: protobuf bytes of a scalar event, field by field", () => {
  const bytes = encodeEvent({ wallTime: 1.5, step: 3, values: [{ tag: "a", simpleValue: 2 }] });
  assert.deepEqual([...bytes], [
    0x09,
    0,
    0,
    0,
    0,
    0,
    0,
    0xf8,
    0x3f, // wall_time = 1.5 (double, field 1)
    0x10,
    0x03, // step = 3 (varint, field 2)
    0x2a,
    10, // summary (field 5), 10 bytes
    0x0a,
    8, // value (field 1), 8 bytes
    0x0a,
    1,
    0x61, // tag "a"
    0x15,
    0,
    0,
    0,
    0x40, // simple_value = 2 (float, field 2)
  ]);
  const big = encodeEvent({ wallTime: 0, step: 300, values: [] });
  assert.deepEqual([...big.subarray(9)], [0x10, 0xac, 0x02]);
});

Deno.test("encodeEvent/decodeEvent: round trip of scalars, images and the file version", () => {
  const png = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 255);
  const e = {
    wallTime: 1700000000.25,
    step: 123456789012,
    fileVersion: "brain.Event:2",
    values: [
      { tag: "train/loss", simpleValue: 0.125 },
      { tag: "eval/heatmap/0", image: { height: 5, width: 7, colorspace: 3, encoded: png } },
    ],
  };
  assert.deepEqual(decodeEvent(encodeEvent(e)), e);
});

Deno.test("readRecords: frames round trip, and a flipped bit or a cut file is reported", () => {
  const a = frameRecord(enc("first")), b = frameRecord(new Uint8Array(0));
  const file = new Uint8Array([...a, ...b]);
  assert.deepEqual(readRecords(file).map((r) => new TextDecoder().decode(r)), ["first", ""]);
  const badData = file.slice();
  badData[13] = badData[13]! ^ 1;
  assert.throws(() => readRecords(badData, "f"), /record 0 at byte 0 of "f".*data's CRC/);
  const badLen = file.slice();
  badLen[a.length] = badLen[a.length]! ^ 1;
  assert.throws(() => readRecords(badLen, "f"), /record 1 at byte 21 .*length's CRC/);
  assert.throws(() => readRecords(file.subarray(0, file.length - 1), "f"), /truncated/);
});

Deno.test("EventFileWriter: a file TensorBoard reads (version first, steps, tags, values)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let t = 1000;
    const w = await EventFileWriter.create(dir, { host: "h", now: () => t++ });
    await w.scalars(1, { "train/loss": 2.5, "train/lr": 1e-3 });
    await w.scalars(2, { "train/loss": 1.25 });
    await w.image(2, "eval/map", {
      height: 1,
      width: 1,
      colorspace: 3,
      encoded: new Uint8Array([1, 2]),
    });
    w.close();
    assert.match(w.path, /events\.out\.tfevents\.1000\.h$/);
    const events = await readEventFile(w.path);
    assert.equal(events[0]!.fileVersion, "brain.Event:2");
    assert.deepEqual(events.slice(1).map((e) => [e.step, e.wallTime, e.values.map((v) => v.tag)]), [
      [1, 1001, ["train/loss", "train/lr"]],
      [2, 1002, ["train/loss"]],
      [2, 1003, ["eval/map"]],
    ]);
    assert.equal(events[1]!.values[1]!.simpleValue, Math.fround(1e-3));
    assert.equal(events[2]!.values[0]!.simpleValue, 1.25);
    const w2 = await EventFileWriter.create(dir, { host: "h", now: () => 1000 });
    w2.close();
    assert.notEqual(w2.path, w.path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("golden file written by the real tensorboard package: read back, and rewritten byte for byte", async () => {
  // tests/tools/tb_golden.py: Event protos of tensorboard's own classes, framed by its RecordWriter.
  const path = new URL("../testdata/tfevents/golden.tfevents", import.meta.url).pathname;
  const events = await readEventFile(path);
  const png = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3]);
  const expected = [
    { wallTime: 1700000000.5, step: 0, fileVersion: "brain.Event:2", values: [] },
    {
      wallTime: 1700000001.25,
      step: 1,
      values: [
        { tag: "train/loss", simpleValue: 2.5 },
        { tag: "train/lr", simpleValue: Math.fround(0.001) },
      ],
    },
    {
      wallTime: 1700000002,
      step: 300,
      values: [{
        tag: "eval/selection/00000513",
        image: { height: 2, width: 3, colorspace: 3, encoded: png },
      }],
    },
  ];
  assert.deepEqual(events, expected);
  const ours = expected.map((e) => frameRecord(encodeEvent(e)));
  const bytes = new Uint8Array(ours.reduce((n, r) => n + r.length, 0));
  let off = 0;
  for (const r of ours) {
    bytes.set(r, off);
    off += r.length;
  }
  assert.deepEqual(bytes, await Deno.readFile(path));
});
