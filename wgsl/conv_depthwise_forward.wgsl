{{ENABLE}}
// Depthwise 2-D convolution on channels-last maps (PyTorch Conv2d with groups = C, stride 1,
// zero padding P): y[b, oy, ox, c] = bias[c] + sum over ky, kx < K of
// w[c, 0, ky, kx] * x[b, oy + ky - P, ox + kx - P, c] (out-of-range taps are zero).
// Shapes: x [B, H, W, C] from element xo of its binding; w [C, 1, K, K]; bias [C];
// y [B, HO, WO, C] from element yo, HO = H + 2P - K + 1.
// Params: n = threads (B_chunk * HO * WO * C), H, W, HO, WO, C, xo, yo. Defines: K, P,
// BIAS (the bias term, "bias[c]" or "0.0").
// x and y are stored as T (f32, or f16 activations: loads widen to f32, the sum is f32, the
// store rounds y); w and bias are f32.
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes y element t of the chunk.
// Bindings: 0 x (read), 1 w (read), 2 bias (read), 3 y (write), 4 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<{{T}}>;
struct Params { n: u32, H: u32, W: u32, HO: u32, WO: u32, C: u32, xo: u32, yo: u32 }
@group(0) @binding(4) var<uniform> params: Params;

const K: i32 = {{K}};
const P: i32 = {{P}};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let c = t % params.C;
  var r = t / params.C;
  let ox = i32(r % params.WO);
  r = r / params.WO;
  let oy = i32(r % params.HO);
  let b = r / params.HO;
  var acc = {{BIAS}};
  for (var ky = 0; ky < K; ky++) {
    let iy = oy + ky - P;
    if (iy < 0 || iy >= i32(params.H)) { continue; }
    let row = params.xo + ((b * params.H + u32(iy)) * params.W) * params.C + c;
    for (var kx = 0; kx < K; kx++) {
      let ix = ox + kx - P;
      if (ix < 0 || ix >= i32(params.W)) { continue; }
      acc += w[c * u32(K * K) + u32(ky * K + kx)] * f32(x[row + u32(ix) * params.C]);
    }
  }
  y[params.yo + t] = {{T}}(acc);
}
