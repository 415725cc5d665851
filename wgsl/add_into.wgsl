{{ENABLE}}
// In-place accumulation y += alpha * x (gradient accumulation, residual updates).
// Shapes: x [n], y [n]. Params: n, alpha.
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i updates element i.
// Element type: T (f32, or f16 activation gradients: the sum in f32, rounded at the store).
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{T}}>;
struct Params { n: u32, alpha: f32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n) { return; }
  y[i] = {{T}}(f32(y[i]) + params.alpha * f32(x[i]));
}
