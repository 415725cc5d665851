// Device ceiling: memory bandwidth, as a buffer copy y[i] = x[i] of ELEM (vec4<f32> for the
// ceiling; f32 to show what a scalar-per-thread elementwise kernel reaches). Bytes moved =
// 2 * n * sizeof(ELEM) (one read, one write).
// Params: n (elements of ELEM).
// Dispatch: grid(n, 256); thread t copies element t (256-thread workgroups, like the
// elementwise kernels: smaller ones cost llvmpipe a per-workgroup overhead that halves the rate).
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{ELEM}}>;
struct Params { n: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t < params.n) { y[t] = x[t]; }
}
