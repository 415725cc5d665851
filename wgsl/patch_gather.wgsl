// Cuts only the selected p x p patches out of NCHW images: y[b, k, f] = patch index[b, k] of
// image b (row-major patch numbering q = py * GW + px), features f = (cin * p + ky) * p + kx
// as in patch_unfold. An index outside [0, P) yields zeros.
// Work is split by sample (index and y bind a window of samples, from elements io and yo) and
// within it by image plane (img binds a window of planes, from element xo): plane = first +
// local plane, counted from the sample window's first plane; thread t covers (local plane, k,
// ky, kx).
// Shapes: img [B, Cin, H, W]; index [B, K] i32; y [B, K, F].
// Params: n = threads (planes in chunk * K * p * p), first, Cin, H, W, p, GW, P, K, xo, io,
// yo.
// Dispatch: grid(n, 64) workgroups of 64 threads.
// Bindings: 0 img (read), 1 index (read), 2 y (write), 3 params.
@group(0) @binding(0) var<storage, read> img: array<f32>;
@group(0) @binding(1) var<storage, read> index: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
struct Params {
  n: u32, first: u32, Cin: u32, H: u32, W: u32, p: u32, GW: u32, P: u32, K: u32, xo: u32,
  io: u32, yo: u32,
}
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let p = params.p;
  let kx = t % p;
  var r = t / p;
  let ky = r % p;
  r = r / p;
  let k = r % params.K;
  let local = r / params.K;
  let plane = params.first + local;
  let b = plane / params.Cin;
  let cin = plane % params.Cin;
  let q = index[params.io + b * params.K + k];
  var v = 0.0;
  if (q >= 0 && u32(q) < params.P) {
    let row = (u32(q) / params.GW) * p + ky;
    let col = (u32(q) % params.GW) * p + kx;
    v = img[params.xo + (local * params.H + row) * params.W + col];
  }
  y[params.yo + (b * params.K + k) * params.Cin * p * p + (cin * p + ky) * p + kx] = v;
}
