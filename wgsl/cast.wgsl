{{ENABLE}}
// Converts float storage: y = TY(x), f32 <-> f16 (f32 -> f16 rounds to nearest even, past
// the f16 range to infinity, NaN stays NaN).
// Shapes: x [n], y [n] (any shape, contiguous). Params: n.
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i converts element i.
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<{{TX}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{TY}}>;
struct Params { n: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n) { return; }
  y[i] = {{TY}}(x[i]);
}
