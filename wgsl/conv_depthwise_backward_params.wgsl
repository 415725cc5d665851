{{ENABLE}}
// Weight and bias gradients of the depthwise convolution, first of two passes: thread
// (part, c) sums over the output positions [s * R, min((s + 1) * R, HO * WO)) of one sample
// (part = sample * S + s): pw[part, c, ky, kx] = sum of g[b, oy, ox, c] * x[b, oy + ky - P,
// ox + kx - P, c] and pb[part, c] = sum of g[b, oy, ox, c]. The K * K taps are unrolled
// (TAPS_* code generated in src/ops/conv.ts), so the only loop runs R trips. The second pass
// sums pw and pb over parts (src/ops/reduce.ts).
// Shapes: x [B, H, W, C] from element xo; g [B, HO, WO, C] from element go; pw [B * S, C,
// K * K] from element wo; pb [B * S, C] from element bo (all chunked by sample).
// Params: n = threads (B_chunk * S * C), H, W, HO, WO, C, S, R, xo, go, wo, bo.
// Defines: K, P, TAPS_DECL, TAPS_ACC, TAPS_STORE.
// x and g are stored as T (f32, or f16 activations: loads widen to f32); the partial sums
// pw and pb are f32.
// Dispatch: grid(n, 64) workgroups of 64 threads.
// Bindings: 0 x (read), 1 g (read), 2 pw (write), 3 pb (write), 4 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read> g: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> pw: array<f32>;
@group(0) @binding(3) var<storage, read_write> pb: array<f32>;
struct Params {
  n: u32, H: u32, W: u32, HO: u32, WO: u32, C: u32, S: u32, R: u32,
  xo: u32, go: u32, wo: u32, bo: u32,
}
@group(0) @binding(4) var<uniform> params: Params;

const K: i32 = {{K}};
const P: i32 = {{P}};

/** x[b, iy, ix, c], or 0 outside the map. */
fn xat(b: u32, iy: i32, ix: i32, c: u32) -> f32 {
  if (iy < 0 || iy >= i32(params.H) || ix < 0 || ix >= i32(params.W)) { return 0.0; }
  return f32(x[params.xo + ((b * params.H + u32(iy)) * params.W + u32(ix)) * params.C + c]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let c = t % params.C;
  let part = t / params.C;
  let s = part % params.S;
  let b = part / params.S;
  let start = s * params.R;
  let end = min(start + params.R, params.HO * params.WO);
  var db = 0.0;
{{TAPS_DECL}}
  for (var pos = start; pos < end; pos++) {
    let oy = i32(pos / params.WO);
    let ox = i32(pos % params.WO);
    let gv = f32(g[params.go + ((b * params.HO * params.WO) + pos) * params.C + c]);
    db += gv;
{{TAPS_ACC}}
  }
  let base = params.wo + (part * params.C + c) * u32(K * K);
{{TAPS_STORE}}
  pb[params.bo + part * params.C + c] = db;
}
