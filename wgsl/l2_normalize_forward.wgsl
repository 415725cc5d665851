// L2 normalisation (PyTorch F.normalize, p = 2) along the axis C of x viewed as [O, C, I]:
// element (o, c, i) at o*C*I + c*I + i (the last axis is I = 1). Row r = o*I + i:
// norm = ||x_row||_2, y = x / max(norm, eps). Saves norm[r] for the backward. The sum of
// squares is blocked (blocks of 64, then the block sums).
// Shapes: x, y [O*C*I]; norm [rows]. Params: rows = O*I, C, I, eps.
// Loop trips per invocation: 2*C.
// Dispatch: grid(rows, 64) workgroups of 64 threads; thread r handles row r.
// Bindings: 0 x (read), 1 y (write), 2 norm (write), 3 params.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm: array<f32>;
struct Params { rows: u32, C: u32, I: u32, eps: f32 }
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= params.rows) { return; }
  let C = params.C;
  let I = params.I;
  let base = (r / I) * C * I + r % I;
  var acc: f32 = 0.0;
  var blk: f32 = 0.0;
  for (var c = 0u; c < C; c++) {
    let v = x[base + c * I];
    blk += v * v;
    if ((c & 63u) == 63u) { acc += blk; blk = 0.0; }
  }
  let n = sqrt(acc + blk);
  let d = max(n, params.eps);
  for (var c = 0u; c < C; c++) {
    y[base + c * I] = x[base + c * I] / d;
  }
  norm[r] = n;
}
