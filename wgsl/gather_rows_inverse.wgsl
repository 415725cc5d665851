// Inverse index map of gatherRows' backward: inv[b, idx[b, k]] = k, for inv [B, N] filled
// with -1 beforehand. Requires the indices of one row of idx to be distinct (with repeats,
// one of the positions wins, unspecified which); indices outside [0, N) are skipped.
// Shapes: idx [B, K] i32 (m = B*K), inv [B, N] i32. Params: m, perB = K, n = N.
// Dispatch: grid(m, 256) workgroups of 256 threads; thread p handles idx[p].
// Bindings: 0 idx (read), 1 inv (write), 2 params.
@group(0) @binding(0) var<storage, read> idx: array<i32>;
@group(0) @binding(1) var<storage, read_write> inv: array<i32>;
struct Params { m: u32, perB: u32, n: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let p = gid.x + gid.y * nwg.x * 256u;
  if (p >= params.m) { return; }
  let id = idx[p];
  if (id < 0 || u32(id) >= params.n) { return; }
  let b = p / params.perB;
  inv[b * params.n + u32(id)] = i32(p % params.perB);
}
