/**
 * The import graph of `src/`: every relative import between its files, and the checks the
 * layout promises (README "Layout"): a folder imports only folders of lower layers (or
 * itself), and no runtime import loop exists between files.
 *
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";

/**
 * The layers of `src/`, lowest first. A folder may import itself and any folder of a lower
 * layer; folders of one layer are peers and do not import each other.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ["util"],
  ["gpu", "data", "reference"],
  ["autograd"],
  ["ops"],
  ["params"],
  ["nn", "optim", "loss"],
  ["model"],
  ["checkpoint"],
  ["compare", "encode", "eval", "report"],
  ["train"],
  ["bench", "dist"],
  ["cli"],
];

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

function layerOf(folder: string): number {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  if (i < 0) throw new Error(`Folder "src/${folder}" has no layer in LAYERS`);
  return i;
}

/**
 * Imports that run up a layer or sideways to a peer folder.
 *
 * @param edges The graph.
 * @returns One line per offending import.
 */
export function layerViolations(edges: readonly ImportEdge[]): string[] {
  const bad: string[] = [];
  for (const e of edges) {
    const a = e.from.split("/")[0]!, b = e.to.split("/")[0]!;
    if (a === b || !e.from.includes("/")) continue;
    if (layerOf(b) >= layerOf(a)) {
      bad.push(`src/${e.from} imports src/${e.to} (layer of "${b}" is not below "${a}")`);
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
