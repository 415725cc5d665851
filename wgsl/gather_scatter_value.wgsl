// In-place scatter of one value: y[b, idx[b, k]] = value, for y [B, N] already holding a
// copy of the input (scatterValue's forward; its backward zeroes the same positions of the
// gradient with value 0). Repeated indices write the same value; indices outside [0, N)
// are skipped.
// Shapes: idx [B, K] i32 (m = B*K), y [B, N] f32. Params: m, perB = K, n = N, value.
// Dispatch: grid(m, 256) workgroups of 256 threads; thread p handles idx[p].
// Bindings: 0 idx (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> idx: array<i32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
struct Params { m: u32, perB: u32, n: u32, value: f32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let p = gid.x + gid.y * nwg.x * 256u;
  if (p >= params.m) { return; }
  let id = idx[p];
  if (id < 0 || u32(id) >= params.n) { return; }
  y[(p / params.perB) * params.n + u32(id)] = params.value;
}
