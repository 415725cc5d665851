{{ENABLE}}
// Cuts NCHW images into non-overlapping p x p patches (F.unfold with kernel = stride = p,
// transposed): y[b, q, f] = img[b, cin, py * p + ky, px * p + kx] with patch q = py * GW + px
// (row-major) and feature f = (cin * p + ky) * p + kx, the order of a Conv2d weight
// [Cout, Cin, p, p] viewed as [Cout, Cin * p * p].
// Shapes: img [B, Cin, H, W] from element xo of its binding; y [B, P, F] from element yo,
// P = (H / p) * (W / p), F = Cin * p * p.
// Params: n = threads (B_chunk * P * F), Cin, H, W, p, GW = W / p, P, xo, yo.
// img is f32; y is stored as TY (f32: a copy, or f16: each value rounded once at the store).
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes y element t of the chunk.
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
  let F = params.Cin * p * p;
  let f = t % F;
  let r = t / F;
  let q = r % params.P;
  let b = r / params.P;
  let cin = f / (p * p);
  let ky = (f / p) % p;
  let kx = f % p;
  let row = (q / params.GW) * p + ky;
  let col = (q % params.GW) * p + kx;
  y[params.yo + t] = {{TY}}(img[params.xo + ((b * params.Cin + cin) * params.H + row) * params.W + col]);
}
