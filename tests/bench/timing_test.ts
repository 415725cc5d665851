import { deepStrictEqual as assertEquals, throws } from "node:assert";
import { formatMarkdown, median } from "../../src/bench/timing.ts";

Deno.test("median() of odd and even counts, and of none", () => {
  assertEquals(median([5, 1, 3]), 3);
  assertEquals(median([4, 1, 3, 2]), 2.5);
  throws(() => median([]), RangeError);
});

Deno.test("formatMarkdown() escapes pipes and prints rate and ceiling fraction", () => {
  const md = formatMarkdown([
    { name: "a|b", ms: 1.5, rate: 2, unit: "GB/s", ceiling: 0.25, note: "x|y" },
  ]).split("\n");
  assertEquals(md[2], "| a\\|b | 1.500 | 2.00 GB/s | 25.0% | x\\|y |");
});
