{{ENABLE}}
// Input gradient of the depthwise convolution (conv_depthwise_forward), one thread per input
// element: dx[b, iy, ix, c] = sum over ky, kx of w[c, 0, ky, kx] * g[b, iy + P - ky,
// ix + P - kx, c] over the outputs inside the map.
// Shapes: g [B, HO, WO, C] from element go of its binding; w [C, 1, K, K]; dx [B, H, W, C]
// from element xo.
// Params: n = threads (B_chunk * H * W * C), H, W, HO, WO, C, go, xo. Defines: K, P.
// g and dx are stored as T (f32, or f16 activation gradients: loads widen to f32, the sum
// is f32, the store rounds dx); w is f32.
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes dx element t of the chunk.
// Bindings: 0 g (read), 1 w (read), 2 dx (write), 3 params.
@group(0) @binding(0) var<storage, read> g: array<{{T}}>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<{{T}}>;
struct Params { n: u32, H: u32, W: u32, HO: u32, WO: u32, C: u32, go: u32, xo: u32 }
@group(0) @binding(3) var<uniform> params: Params;

const K: i32 = {{K}};
const P: i32 = {{P}};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let c = t % params.C;
  var r = t / params.C;
  let ix = i32(r % params.W);
  r = r / params.W;
  let iy = i32(r % params.H);
  let b = r / params.H;
  var acc = 0.0;
  for (var ky = 0; ky < K; ky++) {
    let oy = iy + P - ky;
    if (oy < 0 || oy >= i32(params.HO)) { continue; }
    let row = params.go + ((b * params.HO + u32(oy)) * params.WO) * params.C + c;
    for (var kx = 0; kx < K; kx++) {
      let ox = ix + P - kx;
      if (ox < 0 || ox >= i32(params.WO)) { continue; }
      acc += w[c * u32(K * K) + u32(ky * K + kx)] * f32(g[row + u32(ox) * params.C]);
    }
  }
  dx[params.xo + t] = {{T}}(acc);
}
