{{ENABLE}}
// LayerNorm forward over the channel axis of x viewed as [O, C, I]: element (o, c, i) at
// o*C*I + c*I + i. Last-dim LayerNorm is I = 1; channel LayerNorm on NCHW is O = B, I = H*W.
// Row r = o*I + i normalises its C elements with a two-pass mean and biased variance:
// y = (x - mean) * rstd * weight[c] + bias[c], rstd = 1 / sqrt(var + eps). Saves mean[r] and
// rstd[r] for the backward. Sums are blocked (blocks of 64, then the block sums).
// x and y are stored as T (f32, or f16 activations: loads widen to f32, all arithmetic and
// the statistics are f32, the store rounds y); weight, bias, mean, rstd are f32.
// Shapes: x, y [O*C*I]; weight, bias [C] (HAS_WEIGHT / HAS_BIAS; any buffer when unused);
// mean, rstd [rows]. Params: rows = O*I, C, I, eps.
// Loop trips per invocation: 3*C.
// Dispatch: grid(rows, 64) workgroups of 64 threads; thread r handles row r.
// Bindings: 0 x (read), 1 weight (read), 2 bias (read), 3 y (write), 4 mean (write),
// 5 rstd (write), 6 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<{{T}}>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
struct Params { rows: u32, C: u32, I: u32, eps: f32 }
@group(0) @binding(6) var<uniform> params: Params;

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
    blk += f32(x[base + c * I]);
    if ((c & 63u) == 63u) { acc += blk; blk = 0.0; }
  }
  let m = (acc + blk) / f32(C);
  acc = 0.0;
  blk = 0.0;
  for (var c = 0u; c < C; c++) {
    let d = f32(x[base + c * I]) - m;
    blk += d * d;
    if ((c & 63u) == 63u) { acc += blk; blk = 0.0; }
  }
  let rs = 1.0 / sqrt((acc + blk) / f32(C) + params.eps);
  for (var c = 0u; c < C; c++) {
    var v = (f32(x[base + c * I]) - m) * rs;
    if ({{HAS_WEIGHT}}) { v = v * weight[c]; }
    if ({{HAS_BIAS}}) { v = v + bias[c]; }
    y[base + c * I] = {{T}}(v);
  }
  mean[r] = m;
  rstd[r] = rs;
}
