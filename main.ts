/**
 * The `ps3` command line: `ps3 <command> [options]`. See `ps3 --help`.
 *
 * @module
 */

import { COMMANDS } from "./src/cli/commands.ts";

/**
 * Runs one subcommand.
 *
 * @param argv Arguments (command first).
 * @returns Exit code.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log("Usage: ps3 <command> [options]\n\nCommands:");
    const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
    for (const [k, c] of Object.entries(COMMANDS)) {
      console.log(`  ${k.padEnd(width)}  ${c.summary}`);
    }
    console.log("\nRun `ps3 <command> --help` for a command's options.");
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`ps3: unknown command "${name}" (see ps3 --help)`);
    return 2;
  }
  const mod = await cmd.load();
  return await mod.run(rest);
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`ps3: ${e instanceof Error ? e.message : String(e)}`);
    if (Deno.env.get("PS3_DEBUG")) console.error(e);
    Deno.exit(1);
  }
}
