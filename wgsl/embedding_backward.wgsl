// Last step of embedding's backward, for one window of table rows: dtable[v, c] = sum of
// g[p, c] over the positions p holding id v, in ascending p (deterministic, no atomics);
// rows of ids that do not occur get 0. With ADD = true the sums are added into dtable instead
// (dtable[v, c] += the sum, in one f32 add after the sum, as a separate `addInto` would) and
// the rows of ids that do not occur are left as they are: the parameter's gradient buffer is
// updated in place, without a dense [V, C] temporary. Loop trips per thread = occurrences of the id (<= m;
// the op asserts m against the adapter's loop limit).
// Shapes: seg [V, 2] u32, sorted [m] u32, g [m, c], dtable window [wrows, c] holding rows
// row0 .. row0+wrows-1. Params: wrows, row0, c. Defines: ADD (true or false).
// Dispatch: grid(wrows * c, 256) workgroups of 256 threads; thread t handles
// dtable[t / c, t % c].
// Bindings: 0 seg (read), 1 sorted (read), 2 g (read), 3 dtable (write), 4 params.
@group(0) @binding(0) var<storage, read> seg: array<u32>;
@group(0) @binding(1) var<storage, read> sorted: array<u32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>;
struct Params { wrows: u32, row0: u32, c: u32 }
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= params.wrows * params.c) { return; }
  let v = params.row0 + t / params.c;
  let ch = t % params.c;
  let first = seg[2u * v];
  let end = seg[2u * v + 1u];
  var acc = 0.0;
  for (var r = first; r < end; r++) { acc += g[sorted[r] * params.c + ch]; }
  if ({{ADD}}) {
    if (first < end) { dtable[t] = dtable[t] + acc; }
  } else {
    dtable[t] = acc;
  }
}
