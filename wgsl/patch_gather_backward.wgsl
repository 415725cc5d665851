// Gradient of patch_gather, one thread per image element (no atomics): the element's patch
// q = (row / p) * GW + col / p was selected as k = inv[b, q] (-1: not selected, gradient 0),
// and takes g[b, k, (cin * p + row % p) * p + col % p].
// Split like patch_gather: g and inv bind a window of samples (from elements go and vo), dimg
// a window of planes (from element xo): plane = first + local plane, counted from the sample
// window's first plane.
// Shapes: g [B, K, F]; inv [B, P] i32; dimg [B, Cin, H, W].
// Params: n = threads (planes in chunk * H * W), first, Cin, H, W, p, GW, P, K, go, vo, xo.
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes dimg element t of the chunk.
// Bindings: 0 g (read), 1 inv (read), 2 dimg (write), 3 params.
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> inv: array<i32>;
@group(0) @binding(2) var<storage, read_write> dimg: array<f32>;
struct Params {
  n: u32, first: u32, Cin: u32, H: u32, W: u32, p: u32, GW: u32, P: u32, K: u32, go: u32,
  vo: u32, xo: u32,
}
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let p = params.p;
  let col = t % params.W;
  var r = t / params.W;
  let row = r % params.H;
  let plane = params.first + r / params.H;
  let b = plane / params.Cin;
  let cin = plane % params.Cin;
  let k = inv[params.vo + b * params.P + (row / p) * params.GW + col / p];
  var v = 0.0;
  if (k >= 0) {
    v = g[params.go + (b * params.K + u32(k)) * params.Cin * p * p + (cin * p + row % p) * p +
      col % p];
  }
  dimg[params.xo + t] = v;
}
