// First step of embedding's backward: a stable counting sort of the token positions by id.
// Thread p computes rank = #{q : ids[q] < ids[p] or (ids[q] == ids[p] and q < p)} and writes
// sorted[rank] = p, so positions of one id end up contiguous and in ascending order.
// m loop trips per thread (the op asserts m against the adapter's loop limit).
// Shapes: ids [m] i32, sorted [m] u32. Params: m.
// Dispatch: grid(m, 64) workgroups of 64 threads; thread p handles position p.
// Bindings: 0 ids (read), 1 sorted (write), 2 params.
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read_write> sorted: array<u32>;
struct Params { m: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let p = gid.x + gid.y * nwg.x * 64u;
  if (p >= params.m) { return; }
  let v = ids[p];
  var rank = 0u;
  for (var q = 0u; q < params.m; q++) {
    let w = ids[q];
    rank += select(0u, 1u, w < v || (w == v && q < p));
  }
  sorted[rank] = p;
}
