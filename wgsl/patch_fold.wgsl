{{ENABLE}}
// Gradient of patch_unfold (F.fold with kernel = stride = p): patches do not overlap, so each
// image element takes exactly one patch-feature gradient, g[b, q, f] with q = (row / p) * GW
// + col / p and f = (cin * p + row % p) * p + col % p.
// Shapes: g [B, P, F] from element go of its binding; dimg [B, Cin, H, W] from element xo.
// Params: n = threads (B_chunk * Cin * H * W), Cin, H, W, p, GW = W / p, P, go, xo.
// g is stored as TG (f32, or f16 when the patches were); dimg is f32 (loads widen exactly).
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes dimg element t.
// Bindings: 0 g (read), 1 dimg (write), 2 params.
@group(0) @binding(0) var<storage, read> g: array<{{TG}}>;
@group(0) @binding(1) var<storage, read_write> dimg: array<f32>;
struct Params { n: u32, Cin: u32, H: u32, W: u32, p: u32, GW: u32, P: u32, go: u32, xo: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let p = params.p;
  let col = t % params.W;
  var r = t / params.W;
  let row = r % params.H;
  r = r / params.H;
  let cin = r % params.Cin;
  let b = r / params.Cin;
  let q = (row / p) * params.GW + col / p;
  let f = (cin * p + row % p) * p + col % p;
  dimg[params.xo + t] = f32(g[params.go + (b * params.P + q) * params.Cin * p * p + f]);
}
