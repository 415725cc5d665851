// Second step of embedding's backward: the run of each id in the sorted positions.
// For every id v in [0, V) that occurs, seg[v] = (first, end) with sorted[first .. end-1]
// its positions; seg must be zeroed beforehand (an empty run). Each entry is written by
// one thread only: the one at the start (first) or the end (end) of the run.
// Shapes: ids [m] i32, sorted [m] u32, seg [V, 2] u32. Params: m, v = V.
// Dispatch: grid(m, 256) workgroups of 256 threads; thread r handles sorted position r.
// Bindings: 0 ids (read), 1 sorted (read), 2 seg (write), 3 params.
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> sorted: array<u32>;
@group(0) @binding(2) var<storage, read_write> seg: array<u32>;
struct Params { m: u32, v: u32 }
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 256u;
  if (r >= params.m) { return; }
  let id = ids[sorted[r]];
  if (id < 0 || u32(id) >= params.v) { return; }
  if (r == 0u || ids[sorted[r - 1u]] != id) { seg[2u * u32(id)] = r; }
  if (r + 1u == params.m || ids[sorted[r + 1u]] != id) { seg[2u * u32(id) + 1u] = r + 1u; }
}
