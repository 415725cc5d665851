{{ENABLE}}
// Cuts NCHW images into non-overlapping p x p patches (F.unfold with kernel = stride = p,
// transposed): y[b, q, f] = img[b, cin, py * p + ky, px * p + kx] with patch q = py * GW + px
// (row-major) and feature f = (cin * p + ky) * p + kx, the order of a Conv2d weight
// [Cout, Cin, p, p] viewed as [Cout, Cin * p * p].
// Shapes: img [B, Cin, H, W] from element xo of its binding; y [B, P, F] from element yo,
// P = (H / p) * (W / p), F = Cin * p * p.
// Params: n = threads (B_chunk * P * Cin * p: one per patch row), Cin, H, W, p, GW = W / p,
// P, xo, yo.
// img is f32; y is stored as TY (f32: a copy, or f16: each value rounded once at the store).
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t copies the p values of patch row
// t (y elements t * p .. t * p + p - 1 of the chunk: image row `row`, columns col0 ..), so
// the index arithmetic (integer divisions, lane by lane on a CPU adapter) is paid once per
// row rather than per element.
// Bindings: 0 img (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> img: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<{{TY}}>;
struct Params { n: u32, Cin: u32, H: u32, W: u32, p: u32, GW: u32, P: u32, xo: u32, yo: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let p = params.p;
  let ky = t % p;
  let r = t / p;
  let cin = r % params.Cin;
  let r2 = r / params.Cin;
  let q = r2 % params.P;
  let b = r2 / params.P;
  let row = (q / params.GW) * p + ky;
  let src = params.xo + ((b * params.Cin + cin) * params.H + row) * params.W + (q % params.GW) * p;
  let dst = params.yo + t * p;
  for (var kx = 0u; kx < p; kx++) {
    y[dst + kx] = {{TY}}(img[src + kx]);
  }
}
