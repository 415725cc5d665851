// Inverse of the patch selection, for the gradient of patch_gather: inv[b, index[b, k]] = k.
// inv must be filled with -1 first; indices outside [0, P) are skipped. Indices must be unique
// within a row (each thread writes its own element then, so the result is deterministic).
// Split by sample like patch_gather (b local to the chunk).
// Shapes: index [B, K] i32 from element io; inv [B, P] i32 from vo.
// Params: n = samples in chunk * K, K, P, io, vo.
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t handles index element t.
// Bindings: 0 index (read), 1 inv (write), 2 params.
@group(0) @binding(0) var<storage, read> index: array<i32>;
@group(0) @binding(1) var<storage, read_write> inv: array<i32>;
struct Params { n: u32, K: u32, P: u32, io: u32, vo: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let q = index[params.io + t];
  if (q >= 0 && u32(q) < params.P) {
    inv[params.vo + (t / params.K) * params.P + u32(q)] = i32(t % params.K);
  }
}
