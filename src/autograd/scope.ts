/**
 * Memory scopes: every tensor created inside {@linkcode tidy} is disposed when it ends,
 * except what the function returns (handed to the enclosing scope) and what was kept.
 *
 * A training step wrapped in `tidy` therefore gives back all of its activations and
 * intermediate gradients, and memory stays flat from step to step.
 *
 * @module
 */

import type { Tensor } from "./tensor.ts";

const scopes: Set<Tensor>[] = [];

/**
 * Registers a new tensor with the innermost scope (called by the Tensor constructor).
 *
 * @param t The new tensor.
 */
export function track(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/**
 * Removes a tensor from every scope (called on dispose and by {@linkcode keep}).
 *
 * @param t The tensor.
 */
export function untrack(t: Tensor): void {
  for (let i = scopes.length - 1; i >= 0; i--) {
    if (scopes[i]!.delete(t)) return;
  }
}

/**
 * Exempts a tensor from scope disposal: it lives until disposed explicitly.
 *
 * @param t The tensor.
 * @returns The same tensor.
 * @example
 * ```ts
 * const w = keep(randn([4, 4]));
 * ```
 */
export function keep<T extends Tensor>(t: T): T {
  untrack(t);
  return t;
}

function collect(value: unknown, out: Set<Tensor>, seen: Set<unknown>): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, seen);
  }
}

function isTensor(v: object): v is Tensor {
  return "storage" in v && "shape" in v && "dtype" in v && "dispose" in v;
}

/**
 * Runs a synchronous function in a new scope and disposes every tensor it created that is
 * neither returned (in the result, an array, a Map or a plain object) nor kept.
 *
 * @param fn The work. It must not be async: recording GPU work is synchronous.
 * @returns What `fn` returned; its tensors move to the enclosing scope.
 * @example
 * ```ts
 * const y = tidy(() => add(mul(x, x), x)); // the x*x temporary is freed
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new TypeError("tidy() takes a synchronous function; await outside it");
  }
  const keepSet = new Set<Tensor>();
  collect(result, keepSet, new Set());
  for (const t of scope) {
    if (!keepSet.has(t)) t.dispose();
  }
  const parent = scopes[scopes.length - 1];
  if (parent) { for (const t of keepSet) if (scope.has(t)) parent.add(t); }
  return result;
}

/**
 * {@linkcode tidy} for work that awaits in the middle (a training step that exchanges
 * features with other ranks between its forward and backward passes): the scope stays open
 * across the awaits. Nothing else may record GPU work while it runs, or its tensors would
 * land in this scope; the trainer runs one step at a time.
 *
 * @param fn The work.
 * @returns What `fn` resolved to; its tensors move to the enclosing scope.
 */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  const depth = scopes.length;
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    scopes.splice(depth - 1);
    for (const t of scope) t.dispose();
    throw e;
  }
  if (scopes.length !== depth || scopes[depth - 1] !== scope) {
    throw new Error("tidyAsync(): another scope was opened and not closed during the work");
  }
  scopes.pop();
  const keepSet = new Set<Tensor>();
  collect(result, keepSet, new Set());
  for (const t of scope) {
    if (!keepSet.has(t)) t.dispose();
  }
  const parent = scopes[scopes.length - 1];
  if (parent) { for (const t of keepSet) if (scope.has(t)) parent.add(t); }
  return result;
}
