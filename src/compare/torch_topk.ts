/**
 * Which indices PyTorch's CPU `topk` picks among tied values, reproduced on the host.
 *
 * PS3's selection probabilities are tied by construction (one low-res cell becomes a block
 * of equal candidates at every high-res scale), so the reference's choice inside a block is
 * decided by `torch.topk`'s CPU kernel (ATen TopKImpl.h): `std::partial_sort` when
 * `k * 64 <= n`, else `std::nth_element`, over (value, index) pairs compared by value only.
 * Neither is stable; the chosen set follows from libstdc++'s algorithms, which this module
 * runs step for step. ps3's GPU top-k breaks ties toward the lower index instead (a fine
 * rule for training); `debug-step` uses this one so its outputs can be compared with the
 * reference's.
 *
 * @module
 */

type Pair = [value: number, index: number];

/** PyTorch's "largest" comparator: NaN first, then larger values. */
function before(x: Pair, y: Pair): boolean {
  return (Number.isNaN(x[0]) && !Number.isNaN(y[0])) || x[0] > y[0];
}

function pushHeap(a: Pair[], first: number, hole: number, top: number, value: Pair): void {
  let parent = Math.floor((hole - 1) / 2);
  while (hole > top && before(a[first + parent]!, value)) {
    a[first + hole] = a[first + parent]!;
    hole = parent;
    parent = Math.floor((hole - 1) / 2);
  }
  a[first + hole] = value;
}

function adjustHeap(a: Pair[], first: number, hole: number, len: number, value: Pair): void {
  const top = hole;
  let child = hole;
  while (child < Math.floor((len - 1) / 2)) {
    child = 2 * (child + 1);
    if (before(a[first + child]!, a[first + child - 1]!)) child--;
    a[first + hole] = a[first + child]!;
    hole = child;
  }
  if ((len & 1) === 0 && child === Math.floor((len - 2) / 2)) {
    child = 2 * (child + 1);
    a[first + hole] = a[first + child - 1]!;
    hole = child - 1;
  }
  pushHeap(a, first, hole, top, value);
}

function makeHeap(a: Pair[], first: number, last: number): void {
  const len = last - first;
  if (len < 2) return;
  for (let parent = Math.floor((len - 2) / 2);; parent--) {
    adjustHeap(a, first, parent, len, a[first + parent]!);
    if (parent === 0) return;
  }
}

function heapSelect(a: Pair[], first: number, middle: number, last: number): void {
  makeHeap(a, first, middle);
  for (let i = middle; i < last; i++) {
    if (before(a[i]!, a[first]!)) {
      const value = a[i]!;
      a[i] = a[first]!;
      adjustHeap(a, first, 0, middle - first, value);
    }
  }
}

function swap(a: Pair[], i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

function moveMedianToFirst(a: Pair[], result: number, x: number, y: number, z: number): void {
  if (before(a[x]!, a[y]!)) {
    if (before(a[y]!, a[z]!)) swap(a, result, y);
    else if (before(a[x]!, a[z]!)) swap(a, result, z);
    else swap(a, result, x);
  } else if (before(a[x]!, a[z]!)) swap(a, result, x);
  else if (before(a[y]!, a[z]!)) swap(a, result, z);
  else swap(a, result, y);
}

function unguardedPartition(a: Pair[], first: number, last: number, pivot: number): number {
  for (;;) {
    while (before(a[first]!, a[pivot]!)) first++;
    last--;
    while (before(a[pivot]!, a[last]!)) last--;
    if (!(first < last)) return first;
    swap(a, first, last);
    first++;
  }
}

function insertionSort(a: Pair[], first: number, last: number): void {
  if (first === last) return;
  for (let i = first + 1; i !== last; i++) {
    const value = a[i]!;
    if (before(value, a[first]!)) {
      for (let j = i; j > first; j--) a[j] = a[j - 1]!;
      a[first] = value;
    } else {
      let hole = i, next = i - 1;
      while (before(value, a[next]!)) {
        a[hole] = a[next]!;
        hole = next;
        next--;
      }
      a[hole] = value;
    }
  }
}

function nthElement(a: Pair[], first: number, nth: number, last: number): void {
  if (first === last || nth === last) return;
  let depth = 2 * Math.floor(Math.log2(last - first));
  while (last - first > 3) {
    if (depth === 0) {
      heapSelect(a, first, nth + 1, last);
      swap(a, first, nth);
      return;
    }
    depth--;
    const mid = first + Math.floor((last - first) / 2);
    moveMedianToFirst(a, first, first + 1, mid, last - 1);
    const cut = unguardedPartition(a, first + 1, last, first);
    if (cut <= nth) first = cut;
    else last = cut;
  }
  insertionSort(a, first, last);
}

/**
 * The indices `torch.topk(values, k)` returns on the CPU (as a set, sorted ascending).
 *
 * @param values One row of scores.
 * @param k How many to take (0 <= k <= values.length).
 * @returns The chosen indices, ascending.
 * @example
 * ```ts
 * torchTopkIndices([0.5, 0.5, 0.5, 0.1], 2); // the pair libstdc++'s heap keeps
 * ```
 */
export function torchTopkIndices(values: ArrayLike<number>, k: number): number[] {
  const n = values.length;
  if (k < 0 || k > n) throw new RangeError(`torchTopkIndices(): k = ${k} is outside [0, ${n}]`);
  if (k === 0) return [];
  const a: Pair[] = Array.from({ length: n }, (_, i) => [values[i]!, i]);
  if (k * 64 <= n) heapSelect(a, 0, k, n);
  else nthElement(a, 0, k - 1, n);
  return a.slice(0, k).map((p) => p[1]).sort((x, y) => x - y);
}
