{{ENABLE}}
// LayerNorm backward to the input, one thread per row of x viewed as [O, C, I] (see
// layer_norm_forward.wgsl). With xhat = (x - mean) * rstd and dxhat = g * weight[c]:
// dx = rstd * (dxhat - mean_c(dxhat) - xhat * mean_c(dxhat * xhat)).
// x, g and dx are stored as T (f32, or f16 activations; arithmetic in f32); weight, mean,
// rstd are f32.
// Shapes: x, g, dx [O*C*I]; weight [C] (HAS_WEIGHT; any buffer when unused); mean, rstd
// [rows] saved by the forward. Params: rows = O*I, C, I.
// Loop trips per invocation: 2*C.
// Dispatch: grid(rows, 64) workgroups of 64 threads; thread r handles row r.
// Bindings: 0 x (read), 1 weight (read), 2 g (read), 3 mean (read), 4 rstd (read),
// 5 dx (write), 6 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<{{T}}>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<{{T}}>;
struct Params { rows: u32, C: u32, I: u32 }
@group(0) @binding(6) var<uniform> params: Params;

fn dxhat_at(i: u32, c: u32) -> f32 {
  if ({{HAS_WEIGHT}}) { return f32(g[i]) * weight[c]; }
  return f32(g[i]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= params.rows) { return; }
  let C = params.C;
  let I = params.I;
  let base = (r / I) * C * I + r % I;
  let m = mean[r];
  let rs = rstd[r];
  var sumD: f32 = 0.0;
  var sumDX: f32 = 0.0;
  for (var c = 0u; c < C; c++) {
    let i = base + c * I;
    let d = dxhat_at(i, c);
    sumD += d;
    sumDX += d * (f32(x[i]) - m) * rs;
  }
  let meanD = sumD / f32(C);
  let meanDX = sumDX / f32(C);
  for (var c = 0u; c < C; c++) {
    let i = base + c * I;
    dx[i] = {{T}}(rs * (dxhat_at(i, c) - meanD - (f32(x[i]) - m) * rs * meanDX));
  }
}
