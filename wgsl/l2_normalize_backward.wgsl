// Backward of L2 normalisation (see l2_normalize_forward.wgsl), one thread per row. Where
// norm >= eps the denominator is the norm: dx = (g - y * sum_c(g * y)) / norm; below eps it
// is the constant eps (PyTorch's clamp_min passes no gradient there): dx = g / eps.
// Shapes: y, g, dx [O*C*I]; norm [rows] saved by the forward. Params: rows = O*I, C, I, eps.
// Loop trips per invocation: 2*C.
// Dispatch: grid(rows, 64) workgroups of 64 threads; thread r handles row r.
// Bindings: 0 y (read), 1 g (read), 2 norm (read), 3 dx (write), 4 params.
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> norm: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
struct Params { rows: u32, C: u32, I: u32, eps: f32 }
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= params.rows) { return; }
  let C = params.C;
  let I = params.I;
  let base = (r / I) * C * I + r % I;
  let n = norm[r];
  if (n < params.eps) {
    for (var c = 0u; c < C; c++) {
      dx[base + c * I] = g[base + c * I] / params.eps;
    }
    return;
  }
  var dot: f32 = 0.0;
  for (var c = 0u; c < C; c++) {
    dot += g[base + c * I] * y[base + c * I];
  }
  for (var c = 0u; c < C; c++) {
    let i = base + c * I;
    dx[i] = (g[i] - y[i] * dot) / n;
  }
}
