/**
 * Parsing `metrics.jsonl`, an append-only file of JSON lines: a last line cut short (an
 * append interrupted by a crash or a power loss, possibly padded with zero bytes) is
 * detected and dropped with a warning naming the file; a bad line anywhere else is an error
 * naming the file and the line.
 *
 * @module
 */

/**
 * Parses JSON lines, tolerating a torn last line.
 *
 * @param text The file's contents.
 * @param path The file, for messages.
 * @param warn Receives the warning about a dropped last line.
 * @returns The records.
 * @throws {SyntaxError} For a line other than the last that is not valid JSON.
 * @example
 * ```ts
 * parseJsonLines('{"step":1}\n{"step":', "metrics.jsonl", console.warn); // [{ step: 1 }]
 * ```
 */
export function parseJsonLines(
  text: string,
  path: string,
  warn: (message: string) => void,
): Record<string, unknown>[] {
  const lines = text.split("\n");
  // The index of the last line with content: a torn append can only be that one.
  let last = lines.length - 1;
  while (last >= 0 && !lines[last]!.replace(/\0/g, "").trim()) last--;
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i <= last; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      if (i === last) {
        warn(
          `Dropping the last line of "${path}" (line ${i + 1}): it was cut short by an ` +
            `interrupted write (${line.length} characters, ${(e as Error).message})`,
        );
        continue;
      }
      throw new SyntaxError(
        `Cannot read "${path}": line ${i + 1} is not valid JSON (${(e as Error).message})`,
      );
    }
  }
  return out;
}
