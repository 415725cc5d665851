import { deepStrictEqual, match, strictEqual, throws } from "node:assert";
import { join } from "node:path";
import { parseJsonLines } from "../../src/train/jsonl.ts";
import { JsonLines } from "../../src/train/progress.ts";

Deno.test("a torn last line of metrics.jsonl is dropped with a warning naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3-jsonl-" });
  const path = join(dir, "metrics.jsonl");
  await Deno.writeTextFile(path, '{"step":1,"loss":2}\n{"step":2,"loss":1}\n{"step":3,"lo');
  const warnings: string[] = [];
  const m = new JsonLines(path, (w) => warnings.push(w));
  deepStrictEqual(await m.readAll(), [{ step: 1, loss: 2 }, { step: 2, loss: 1 }]);
  strictEqual(warnings.length, 1);
  match(warnings[0]!, /Dropping the last line of ".*metrics\.jsonl" \(line 3\): it was cut short/);
  // A resume rewrites the file without it, and appends go on from a clean line.
  await m.truncateAfter(2);
  await m.append({ step: 3, loss: 0.5 });
  strictEqual(
    await Deno.readTextFile(path),
    '{"step":1,"loss":2}\n{"step":2,"loss":1}\n{"step":3,"loss":0.5}\n',
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("parseJsonLines() drops a zero-padded torn tail, and names the file and line of a bad middle line", () => {
  const warnings: string[] = [];
  deepStrictEqual(
    parseJsonLines('{"step":1}\n{"st\0\0\0\0\n\0\0', "m.jsonl", (w) => warnings.push(w)),
    [{ step: 1 }],
  );
  strictEqual(warnings.length, 1);
  throws(
    () => parseJsonLines('{"step":1}\n{"st\n{"step":3}\n', "runs/x/metrics.jsonl", () => {}),
    /Cannot read "runs\/x\/metrics\.jsonl": line 2 is not valid JSON/,
  );
});
