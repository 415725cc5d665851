{{ENABLE}}
// Softmax along the axis C of x viewed as [O, C, I]: element (o, c, i) at o*C*I + c*I + i
// (the last axis is I = 1). Row r = o*I + i: y = exp(x - max) / sum(exp(x - max)); the
// maximum is subtracted so that no exp overflows. The sum is blocked (blocks of 64, then the
// block sums).
// x and y are stored as T (f32, or f16 activations: the max, exp and sum run in f32, the
// store rounds y).
// Shapes: x, y [O*C*I]. Params: rows = O*I, C (at least 1), I.
// Loop trips per invocation: 3*C.
// Dispatch: grid(rows, 64) workgroups of 64 threads; thread r handles row r.
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{T}}>;
struct Params { rows: u32, C: u32, I: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= params.rows) { return; }
  let C = params.C;
  let I = params.I;
  let base = (r / I) * C * I + r % I;
  var m = f32(x[base]);
  for (var c = 1u; c < C; c++) {
    m = max(m, f32(x[base + c * I]));
  }
  var acc: f32 = 0.0;
  var blk: f32 = 0.0;
  for (var c = 0u; c < C; c++) {
    blk += exp(f32(x[base + c * I]) - m);
    if ((c & 63u) == 63u) { acc += blk; blk = 0.0; }
  }
  let s = acc + blk;
  for (var c = 0u; c < C; c++) {
    y[base + c * I] = {{T}}(exp(f32(x[base + c * I]) - m) / s);
  }
}
