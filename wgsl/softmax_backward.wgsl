{{ENABLE}}
// Softmax backward (see softmax_forward.wgsl), one thread per row:
// dx = y * (g - sum_c(g * y)).
// y, g and dx are stored as T (f32, or f16 activations; arithmetic in f32).
// Shapes: y, g, dx [O*C*I]. Params: rows = O*I, C, I.
// Loop trips per invocation: 2*C.
// Dispatch: grid(rows, 64) workgroups of 64 threads; thread r handles row r.
// Bindings: 0 y (read), 1 g (read), 2 dx (write), 3 params.
@group(0) @binding(0) var<storage, read> y: array<{{T}}>;
@group(0) @binding(1) var<storage, read> g: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> dx: array<{{T}}>;
struct Params { rows: u32, C: u32, I: u32 }
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= params.rows) { return; }
  let C = params.C;
  let I = params.I;
  let base = (r / I) * C * I + r % I;
  var dot: f32 = 0.0;
  for (var c = 0u; c < C; c++) {
    dot += f32(g[base + c * I]) * f32(y[base + c * I]);
  }
  for (var c = 0u; c < C; c++) {
    let i = base + c * I;
    dx[i] = {{T}}(f32(y[i]) * (f32(g[i]) - dot));
  }
}
