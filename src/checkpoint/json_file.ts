/**
 * Reading JSON files with errors that name the file and the reason (missing, empty, not valid
 * JSON), instead of the bare `Unexpected end of JSON input` or `No such file or directory`.
 *
 * @module
 */

/**
 * Reads and parses a JSON file.
 *
 * @param path The file.
 * @param what What the file is, for the message (e.g. "the checkpoint's state").
 * @returns The parsed value.
 * @throws {Deno.errors.NotFound} When the file is missing (the message names it).
 * @throws {SyntaxError} When it is empty or not valid JSON (the message names it).
 * @example
 * ```ts
 * const state = await readJsonFile("runs/tiny/checkpoints/step_00000004/state.json");
 * ```
 */
export async function readJsonFile(path: string, what = "JSON file"): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot read ${what} "${path}": the file is missing`);
    }
    throw new Error(`Cannot read ${what} "${path}": ${(e as Error).message}`, { cause: e });
  }
  if (!text.trim()) throw new SyntaxError(`Cannot read ${what} "${path}": the file is empty`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(
      `Cannot read ${what} "${path}": it is not valid JSON (${(e as Error).message}; ` +
        `${text.length} characters, truncated or damaged?)`,
    );
  }
}
