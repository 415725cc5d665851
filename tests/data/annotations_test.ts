import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import {
  type Annotation,
  boxMap,
  buildCaption,
  chooseCaptions,
  clipBoxes,
  ERROR_CAPTION,
  filterKeywords,
  maskSentences,
  mergeSentences,
  parseAnnotation,
  splitSentences,
} from "../../src/data/pipeline/annotations.ts";
import { Rng } from "../../src/util/rng.ts";
import { assertKind } from "./sample_fixtures.ts";

const where = { key: "00000001", file: "00000001.json" };
const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const parse = (v: unknown) => parseAnnotation(enc(v), where);

/** Shaped like the reference README's example. */
const GOOD = {
  text: [
    "The second image is a cropped view of the Ferris wheel. The sky appears overcast.",
    "The second image is a close-up of a dock. The water is calm. There is no visible text.",
    'A section of the cityscape with signs. The text on the signs includes "UBS."',
  ],
  box: [[1020, 780, 1380, 1020], [2010, 675, 2190, 1125], [30.5, 10, 90.25, 60]],
  global_text: "The image is a panoramic view of a cityscape. The sky is clear.",
};

Deno.test("parseAnnotation() reads captions, boxes (integral or not) and the global caption", () => {
  const a = parse(GOOD);
  assertEquals(a.local.length, 3);
  assertEquals(a.local[0]!.box, { x1: 1020, y1: 780, x2: 1380, y2: 1020, integral: true });
  assertEquals(a.local[2]!.box, { x1: 30.5, y1: 10, x2: 90.25, y2: 60, integral: false });
  assertEquals(a.global, GOOD.global_text);
  assertEquals(a.repairs, []);
  // Extra fields are allowed; null counts as absent.
  const b = parse({ text: null, box: null, global_text: "  A harbour.  ", type: "x" });
  assertEquals([b.local.length, b.global], [0, "A harbour."]);
});

Deno.test("parseAnnotation() rejects malformed JSON as json-invalid", () => {
  assertKind(() => parse("{not json"), "json-invalid", "not JSON");
  assertKind(
    () => parseAnnotation(new Uint8Array([0x7b, 0xff, 0x7d]), where),
    "json-invalid",
    "UTF-8",
  );
  assertKind(() => parse('{"text": ["a"], "box": [[NaN, 0, 1, 1]]}'), "json-invalid", "not JSON");
  assertKind(() => parse([GOOD]), "json-invalid", "an array");
  assertKind(() => parse("3"), "json-invalid", "number");
  assertKind(() => parse({ ...GOOD, text: "one caption" }), "json-invalid", 'field "text"');
  assertKind(() => parse({ ...GOOD, text: ["a", 3, "c"] }), "json-invalid", 'field "text.1"');
  assertKind(() => parse({ ...GOOD, global_text: 7 }), "json-invalid", 'field "global_text"');
  const e = assertKind(() => parse({ ...GOOD, box: 5 }), "json-invalid", 'field "box"');
  assertEquals([e.key, e.file], [where.key, where.file]);
  assert(e.message.startsWith('Cannot use sample "00000001" (00000001.json): '), e.message);
});

Deno.test("parseAnnotation() reports missing fields and count mismatches", () => {
  assertKind(() => parse({}), "json-missing-field", "neither");
  assertKind(() => parse({ box: [[0, 0, 1, 1]] }), "json-missing-field", "neither");
  assertKind(() => parse({ text: ["a"] }), "json-missing-field", 'no "box"');
  assertKind(
    () => parse({ ...GOOD, box: GOOD.box.slice(1) }),
    "box-count-mismatch",
    "3 captions but 2 boxes",
  );
});

Deno.test("parseAnnotation() rejects non-numeric, short, inverted and empty boxes", () => {
  const one = (box: unknown) => parse({ text: ["a boat"], box: [box] });
  assertKind(() => one(["1", 2, 3, 4]), "box-invalid", 'box 0 is ["1",2,3,4]');
  assertKind(() => one([1, 2, 3]), "box-invalid", "not four finite numbers");
  assertKind(() => one([1, 2, 3, 4, 5]), "box-invalid", "not four finite numbers");
  assertKind(() => one(null), "box-invalid", "box 0 is null");
  assertKind(() => one([10, 0, 5, 8]), "box-invalid", "inverted");
  assertKind(() => one([0, 9, 5, 8]), "box-invalid", "inverted");
  assertKind(() => one([3, 0, 3, 8]), "box-invalid", "no area");
});

Deno.test("parseAnnotation() drops error-marker and empty captions, failing when none is left", () => {
  const a = parse({
    text: [ERROR_CAPTION, "A boat.", "  ", "The image is a close-up of"],
    box: [[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3], [0, 0, 4, 4]],
  });
  assertEquals(a.local.map((l) => l.text), ["A boat."]);
  assertEquals(a.local[0]!.box.x2, 2);
  assertEquals(a.repairs.sort(), [
    "caption-empty-dropped",
    "caption-empty-dropped",
    "caption-error-marker-dropped",
  ]);
  assertKind(
    () => parse({ text: [ERROR_CAPTION], box: [[0, 0, 1, 1]], global_text: "!!" }),
    "caption-error-marker",
  );
  assertKind(() => parse({ global_text: ERROR_CAPTION }), "caption-error-marker");
  assertKind(
    () => parse({ text: ["", "..."], box: [[0, 0, 1, 1], [0, 0, 1, 1]] }),
    "caption-empty",
  );
  // A marker global caption leaves the local ones.
  assertEquals(
    parse({ text: ["A dog."], box: [[0, 0, 1, 1]], global_text: ERROR_CAPTION }).global,
    null,
  );
});

Deno.test("clipBoxes() clips boxes to the image and rejects boxes outside it", () => {
  const a = parse({ text: ["a", "b"], box: [[-5, 10, 50, 20], [1, 2, 3, 4]] });
  const c = clipBoxes(a, { width: 40, height: 30, ...where });
  assertEquals(c.local[0]!.box, { x1: 0, y1: 10, x2: 40, y2: 20, integral: true });
  assertEquals(c.local[1]!.box, a.local[1]!.box);
  assertEquals(c.repairs, ["box-clipped"]);
  const out = parse({ text: ["a"], box: [[40, 0, 60, 10]] });
  assertKind(
    () => clipBoxes(out, { width: 40, height: 30, ...where }),
    "box-out-of-range",
    "40x30",
  );
  const above = parse({ text: ["a"], box: [[0, -20, 10, 0]] });
  assertKind(() => clipBoxes(above, { width: 40, height: 30, ...where }), "box-out-of-range");
});

Deno.test("filterKeywords() drops the close-up phrases and a last 'text ... visible' sentence", () => {
  assertEquals(
    filterKeywords("The image is a close-up of a boat. No text is visible."),
    " a boat.",
  );
  assertEquals(
    filterKeywords("The second image is a close-up of a sign. It reads STOP. The text is visible."),
    " a sign. It reads STOP.",
  );
  // Only the last sentence, only with both words (case-sensitive, substrings as in Python).
  assertEquals(filterKeywords("No text is visible. A dock."), "No text is visible. A dock.");
  assertEquals(filterKeywords("The context is visible."), "The context is visible.");
  assertEquals(filterKeywords("A boat. Text is Visible."), "A boat. Text is Visible.");
  assertEquals(filterKeywords("A boat.  The context is visible."), "A boat.");
});

Deno.test("splitSentences() splits after . ! ? followed by spaces only", () => {
  assertEquals(splitSentences("A boat. A dock!  Sky? End"), ["A boat.", "A dock!", "Sky?", "End"]);
  assertEquals(splitSentences("No split.\nHere 3.5 m"), ["No split.\nHere 3.5 m"]);
  assertEquals(splitSentences("Ends. "), ["Ends.", ""]);
  assertEquals(splitSentences(""), [""]);
});

Deno.test("maskSentences() keeps a run starting in the first three, each run reachable", () => {
  const text = "S0. S1. S2. S3. S4.";
  const seen = new Set<string>();
  const rng = new Rng(3);
  for (let i = 0; i < 3000; i++) {
    const out = maskSentences(text, rng);
    const ids = out.split(" ").map((s) => Number(s.slice(1, -1)));
    const start = ids[0]!;
    assert(start <= 2, out);
    assert(ids.every((v, j) => v === start + j), `not a contiguous run: ${out}`);
    seen.add(`${start}:${ids.length}`);
  }
  // start 0: 1..5, start 1: 1..4, start 2: 1..3 -> 12 combinations.
  assertEquals(seen.size, 12);
  assertEquals(maskSentences("Only one.", rng), "Only one.");
});

Deno.test("mergeSentences() keeps floor(total / captions) sentences in their order", () => {
  const rng = new Rng(5);
  for (let i = 0; i < 200; i++) {
    const out = mergeSentences(["A1. A2. A3.", "B1. B2.", "C1."], rng).split(" ");
    assertEquals(out.length, 2); // floor(6 / 3)
    const order = ["A1.", "A2.", "A3.", "B1.", "B2.", "C1."];
    assert(order.indexOf(out[0]!) < order.indexOf(out[1]!), out.join(" "));
  }
  assertEquals(mergeSentences(["One. Two."], rng), "One. Two.");
});

Deno.test("buildCaption() filters, masks and merges as the reference does", () => {
  const rng = new Rng(1);
  assertEquals(
    buildCaption(["The image is a close-up of a boat. No text is visible."], rng, {
      sentenceMasking: false,
    }),
    " a boat.",
  );
  for (let i = 0; i < 50; i++) {
    const c = buildCaption(["A. B. C."], rng, { sentenceMasking: true });
    assert(["A.", "A. B.", "A. B. C.", "B.", "B. C.", "C."].includes(c), c);
  }
});

Deno.test("chooseCaptions() draws the global caption with the given probability", () => {
  const a = parse(GOOD);
  const rng = new Rng(9);
  let global = 0;
  const n = 4000;
  for (let i = 0; i < n; i++) {
    const c = chooseCaptions(a, rng, { globalCaptionProb: 0.25, sampleNBoxEachImage: 1 });
    if (c.isGlobal) {
      global++;
      assertEquals([c.texts, c.boxes], [[GOOD.global_text], []]);
    } else {
      assertEquals([c.texts.length, c.boxes.length], [1, 1]);
    }
  }
  // Binomial(4000, 0.25): standard deviation 27, so +-120 is beyond 4 sigma.
  assert(Math.abs(global - n / 4) < 120, `${global} global draws of ${n}`);
  const onlyGlobal = parse({ global_text: "A harbour." });
  assert(
    chooseCaptions(onlyGlobal, rng, { globalCaptionProb: 0, sampleNBoxEachImage: 1 }).isGlobal,
  );
  const onlyLocal = parse({ text: ["A dog."], box: [[0, 0, 1, 1]] });
  assert(
    !chooseCaptions(onlyLocal, rng, { globalCaptionProb: 1, sampleNBoxEachImage: 1 }).isGlobal,
  );
});

Deno.test("chooseCaptions() draws min(n, count) distinct boxes in random order", () => {
  const a: Annotation = parse(GOOD);
  const rng = new Rng(2);
  const orders = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const c = chooseCaptions(a, rng, { globalCaptionProb: 0, sampleNBoxEachImage: 2 });
    assertEquals(c.texts.length, 2);
    assert(c.texts[0] !== c.texts[1]);
    c.texts.forEach((t, j) => assertEquals(a.local.find((l) => l.text === t)!.box, c.boxes[j]));
    orders.add(c.texts.map((t) => t.slice(0, 25)).join("|"));
  }
  assertEquals(orders.size, 6); // 3 * 2 ordered pairs
  const all = chooseCaptions(a, rng, { globalCaptionProb: 0, sampleNBoxEachImage: 10 });
  assertEquals(all.texts.length, 3);
});

Deno.test("boxMap() marks rows floor(y1)..ceil(y2) and columns floor(x1)..ceil(x2), clamped", () => {
  const m = boxMap([
    { x1: 0.5, y1: 1, x2: 1.2, y2: 1, integral: false },
    { x1: 3, y1: 2.5, x2: 9, y2: 9, integral: true },
  ], { width: 5, height: 4 });
  // deno-fmt-ignore
  assertEquals(Array.from(m), [
    0, 0, 0, 0, 0,
    1, 1, 1, 0, 0,
    0, 0, 0, 1, 1,
    0, 0, 0, 1, 1,
  ]);
  assert(boxMap(null, { width: 3, height: 2 }).every((v) => v === 1));
  assert(boxMap([], { width: 3, height: 2 }).every((v) => v === 0));
});
