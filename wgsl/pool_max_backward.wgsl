// Gradient of adaptive max pooling, one thread per INPUT element (deterministic, no
// atomics): input (h, w) lies in the windows of outputs oy in [floor(h * OH / H),
// ceil((h + 1) * OH / H)) and likewise ox (PyTorch's window rule with the sizes swapped);
// it sums the output gradients of those outputs whose recorded argmax is h * W + w.
// Shapes: g and arg [N, OH, OW, C] from elements go and ao; dx [N, H, W, C] from element xo.
// Params: n = threads (N_chunk * H * W * C), H, W, OH, OW, C, go, ao, xo.
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes dx element t.
// Bindings: 0 g (read), 1 arg (read), 2 dx (write), 3 params.
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> arg: array<i32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
struct Params { n: u32, H: u32, W: u32, OH: u32, OW: u32, C: u32, go: u32, ao: u32, xo: u32 }
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let c = t % params.C;
  var r = t / params.C;
  let w = r % params.W;
  r = r / params.W;
  let h = r % params.H;
  let b = r / params.H;
  let oy0 = (h * params.OH) / params.H;
  let oy1 = ((h + 1u) * params.OH + params.H - 1u) / params.H;
  let ox0 = (w * params.OW) / params.W;
  let ox1 = ((w + 1u) * params.OW + params.W - 1u) / params.W;
  let me = i32(h * params.W + w);
  var acc = 0.0;
  for (var oy = oy0; oy < oy1; oy++) {
    for (var ox = ox0; ox < ox1; ox++) {
      let o = ((b * params.OH + oy) * params.OW + ox) * params.C + c;
      if (arg[params.ao + o] == me) { acc += g[params.go + o]; }
    }
  }
  dx[params.xo + t] = acc;
}
