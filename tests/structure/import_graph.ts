/**
 * The import graph of `src/`: every relative import between its files, and the checks the
 * layout promises (README "Layout"): a folder imports only the folders below it, and no
 * runtime import loop exists between files.
 *
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";

/**
 * What each folder of `src/` may import directly (besides itself); it may also import
 * whatever those import, transitively. `src/data` counts as its three sub-folders.
 * Together this is a layered DAG: nothing runs back up, and peers do not import each other.
 */
export const DEPENDS: Readonly<Record<string, readonly string[]>> = {
  "util": [],
  "gpu": ["util"],
  "reference": ["util"],
  "data/formats": ["util"],
  "data/pipeline": ["data/formats"],
  "data/tools": ["data/pipeline"],
  "autograd": ["gpu"],
  "ops": ["autograd"],
  "params": ["ops"],
  "nn": ["params"],
  "optim": ["params"],
  "loss": ["ops"],
  "model": ["nn"],
  "checkpoint": ["model", "data/formats"],
  "compare": ["checkpoint", "loss"],
  "encode": ["checkpoint", "data/pipeline"],
  "eval": ["encode", "loss", "data/tools"],
  "report": ["util"],
  "dist": ["params"],
  "train": ["eval", "report", "optim", "dist"],
  "bench": ["train", "reference"],
  "profile": ["bench"],
  "cli": ["bench", "compare", "profile"],
};

/** One import between two files of `src/`. */
export interface ImportEdge {
  /** Importing file, relative to `src/`. */
  from: string;
  /** Imported file, relative to `src/`. */
  to: string;
  /** Whether the import is `import type` (erased at run time). */
  typeOnly: boolean;
}

const SPEC = /(import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["'](\.{1,2}\/[^"']+)["']/g;
const DYNAMIC =
  /import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)|new URL\(\s*["'](\.{1,2}\/[^"']+\.ts)["']/g;

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* walk(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

/**
 * Reads every relative import of the TypeScript files under a `src/` folder.
 *
 * @param src The `src/` folder.
 * @returns The edges that stay inside `src/` (WGSL and other files are left out).
 */
export async function importEdges(src: string): Promise<ImportEdge[]> {
  const edges: ImportEdge[] = [];
  for await (const file of walk(src)) {
    const text = await Deno.readTextFile(file);
    const add = (spec: string, typeOnly: boolean) => {
      const target = resolve(dirname(file), spec);
      const to = relative(src, target);
      if (to.startsWith("..") || !to.endsWith(".ts")) return;
      edges.push({ from: relative(src, file), to, typeOnly });
    };
    for (const m of text.matchAll(SPEC)) add(m[3]!, m[2] !== undefined);
    for (const m of text.matchAll(DYNAMIC)) add((m[1] ?? m[2])!, false);
  }
  return edges;
}

/**
 * The folder an `src/`-relative path belongs to (`data/<sub>` for the data pipeline).
 *
 * @param path A path relative to `src/`.
 * @returns Its folder key in {@linkcode DEPENDS}.
 */
export function folderOf(path: string): string {
  const parts = path.split("/");
  return parts[0] === "data" ? parts.slice(0, 2).join("/") : parts[0]!;
}

function reachable(folder: string): Set<string> {
  const seen = new Set<string>();
  const todo = [...(DEPENDS[folder] ?? [])];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    todo.push(...(DEPENDS[f] ?? []));
  }
  return seen;
}

/**
 * Imports that run up a layer or sideways to a peer folder, and folders missing from
 * {@linkcode DEPENDS}.
 *
 * @param edges The graph.
 * @returns One line per offending import.
 */
export function layerViolations(edges: readonly ImportEdge[]): string[] {
  const bad: string[] = [];
  for (const e of edges) {
    if (!e.from.includes("/")) continue;
    const a = folderOf(e.from), b = folderOf(e.to);
    if (a === b) continue;
    if (!(a in DEPENDS)) {
      const msg = `src/${a} has no entry in DEPENDS`;
      if (!bad.includes(msg)) bad.push(msg);
    } else if (!reachable(a).has(b)) {
      bad.push(`src/${e.from} imports src/${e.to} ("${a}" may not import "${b}")`);
    }
  }
  return bad;
}

/**
 * Runtime import loops between files (type-only imports are erased and do not count).
 *
 * @param edges The graph.
 * @returns Each loop found, as its files in order.
 */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    if (e.typeOnly) continue;
    next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  }
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (f: string) => {
    state.set(f, 1);
    stack.push(f);
    for (const g of next.get(f) ?? []) {
      if (state.get(g) === 1) cycles.push([...stack.slice(stack.indexOf(g)), g]);
      else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of [...next.keys()].sort()) if (!state.has(f)) visit(f);
  return cycles;
}
