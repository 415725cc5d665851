/**
 * The autograd tape: ops record a node (inputs, outputs, backward closure); `backward`
 * sorts the nodes topologically, walks them in reverse, and accumulates gradients, so a
 * tensor used twice (fan-out) simply receives the sum. The graph is freed as it is walked.
 *
 * Backward closures run with recording off: gradients of gradients are not supported.
 *
 * @module
 */

import type { Tensor } from "./tensor.ts";
import { fmtShape } from "./fmt_shape.ts";
import { keep, tidy } from "./scope.ts";

/** A recorded op. */
export interface GradNode {
  /** Op name, for messages. */
  readonly op: string;
  /** Inputs in the order the backward returns their gradients. */
  readonly inputs: readonly Tensor[];
  /** Outputs; a multi-output op receives the gradients of all of them together. */
  readonly outputs: readonly Tensor[];
  /**
   * Computes the inputs' gradients from the outputs' gradients (null where an output got
   * none). Returns null for inputs that need none. Released after use.
   */
  backward: ((grads: readonly (Tensor | null)[]) => readonly (Tensor | null)[]) | null;
}

let recording = true;

/**
 * Tells whether ops record tape nodes now (false inside {@linkcode noGrad}).
 *
 * @returns Whether ops currently record nodes.
 */
export function isGradEnabled(): boolean {
  return recording;
}

/**
 * Runs `fn` without recording (inference, optimizer updates).
 *
 * @param fn The work.
 * @returns What `fn` returned.
 * @example
 * ```ts
 * const y = noGrad(() => model.forward(x));
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const prev = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = prev;
  }
}

/**
 * Runs `fn` with recording on (used by recomputation inside a backward pass).
 *
 * @param fn The work.
 * @returns What `fn` returned.
 */
export function withGrad<T>(fn: () => T): T {
  const prev = recording;
  recording = true;
  try {
    return fn();
  } finally {
    recording = prev;
  }
}

/**
 * Records an op when recording is on and some input requires a gradient; marks the
 * outputs as requiring gradients. Ops call this after computing their outputs.
 *
 * @param op Op name.
 * @param inputs Inputs, in backward order.
 * @param outputs Outputs.
 * @param backward Gradient rule.
 * @param always Record even when no input requires a gradient (for blocks whose parameters
 *   are reached through a closure, such as recomputed blocks).
 */
export function record(
  op: string,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  backward: (grads: readonly (Tensor | null)[]) => readonly (Tensor | null)[],
  always = false,
): void {
  if (!recording || (!always && !inputs.some((t) => t.requiresGrad))) return;
  const node: GradNode = { op, inputs, outputs, backward };
  outputs.forEach((t, index) => {
    t.requiresGrad = true;
    t.node = { node, index };
  });
}

function checkShape(t: Tensor, g: Tensor): void {
  if (t.shape.length !== g.shape.length || t.shape.some((d, i) => d !== g.shape[i])) {
    throw new RangeError(
      `Cannot accumulate gradient for ${t.describe()}: shape ${fmtShape(g.shape)} does not ` +
        `match ${fmtShape(t.shape)}`,
    );
  }
}

/** The GPU ops the tape needs, installed by `src/ops` (which depends on this file). */
export interface TapeOps {
  /** In-place `dst += src`. */
  addInto(dst: Tensor, src: Tensor): void;
  /** A tensor of ones shaped like its argument. */
  onesLike(t: Tensor): Tensor;
  /** A copy in a new buffer. */
  clone(t: Tensor): Tensor;
}

let ops: TapeOps | null = null;

/**
 * Installs the GPU ops the tape needs.
 *
 * @param impl The ops.
 */
export function installTapeOps(impl: TapeOps): void {
  ops = impl;
}

/**
 * Back-propagates from one or more roots. Leaf tensors that require gradients receive them
 * in `.grad` (accumulated); intermediate gradients and the graph are freed.
 *
 * Ownership: a backward closure borrows the output gradients and returns input gradients
 * that the tape then owns; it may return an output gradient itself (pass-through).
 *
 * @param roots Output tensor(s), usually a scalar loss.
 * @param grads Gradient(s) of the roots; default ones. They stay owned by the caller.
 * @example
 * ```ts
 * const loss = tidy(() => { const l = mean(square(sub(predict(x), y))); backward(l); return l; });
 * ```
 */
export function backward(roots: Tensor | readonly Tensor[], grads?: Tensor | readonly Tensor[]) {
  const o = ops;
  if (!o) throw new Error("backward(): import src/ops first");
  const rootList: readonly Tensor[] = Array.isArray(roots) ? roots : [roots as Tensor];
  const gradList: readonly Tensor[] | null = grads === undefined
    ? null
    : Array.isArray(grads)
    ? grads
    : [grads as Tensor];
  noGrad(() =>
    tidy(() => {
      const pending = new Map<Tensor, Tensor>();
      const give = (x: Tensor, g: Tensor) => {
        checkShape(x, g);
        if (x.node) {
          const prev = pending.get(x);
          if (prev) {
            o.addInto(prev, g);
            g.dispose();
          } else pending.set(x, g);
        } else if (x.grad === null) {
          x.grad = keep(g);
        } else {
          o.addInto(x.grad, g);
          g.dispose();
        }
      };
      rootList.forEach((r, i) => {
        r.assertAlive();
        if (r.graphReleased) {
          throw new Error(
            `backward(): the graph of ${r.describe()} was freed by an earlier backward pass`,
          );
        }
        if (!r.requiresGrad) return;
        const given = gradList?.[i];
        if (gradList && !given) throw new Error(`backward(): no gradient for ${r.describe()}`);
        give(r, given ? o.clone(given) : o.onesLike(r));
      });
      const order = topoSort(rootList);
      for (let i = order.length - 1; i >= 0; i--) {
        const node = order[i]!;
        const outGrads = node.outputs.map((t) => pending.get(t) ?? null);
        for (const t of node.outputs) {
          pending.delete(t);
          t.node = null;
          t.graphReleased = true;
        }
        const fn = node.backward;
        node.backward = null;
        if (!fn || outGrads.every((g) => g === null)) {
          for (const g of outGrads) g?.dispose();
          continue;
        }
        for (const x of node.inputs) x.assertAlive();
        const inGrads = tidy(() => fn(outGrads)); // temporaries freed node by node
        // Each input gets its own tensor: a gradient returned twice is copied first.
        const given = new Set<Tensor>();
        const mine = node.inputs.map((x, k) => {
          const g = inGrads[k];
          if (!g || !x.requiresGrad) return null;
          if (given.has(g)) return o.clone(g);
          given.add(g);
          return g;
        });
        for (const g of outGrads) if (g && !given.has(g)) g.dispose();
        for (const g of inGrads) if (g && !given.has(g) && !outGrads.includes(g)) g.dispose();
        node.inputs.forEach((x, k) => {
          const g = mine[k];
          if (g) give(x, g);
        });
      }
      for (const g of pending.values()) g.dispose();
    })
  );
}

/** Nodes reachable from the roots, inputs before the nodes that consume them. */
function topoSort(roots: readonly Tensor[]): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  // Iterative DFS (graphs of deep models exceed the JS stack with recursion).
  const stack: { node: GradNode; next: number }[] = [];
  for (const r of roots) {
    const n = r.node?.node;
    if (!n || visited.has(n)) continue;
    visited.add(n);
    stack.push({ node: n, next: 0 });
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.node.inputs.length) {
        const child = top.node.inputs[top.next++]!.node?.node;
        if (child && !visited.has(child)) {
          visited.add(child);
          stack.push({ node: child, next: 0 });
        }
      } else {
        order.push(top.node);
        stack.pop();
      }
    }
  }
  return order;
}
