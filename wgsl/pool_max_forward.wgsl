// Adaptive max pooling of channels-last maps (F.adaptive_max_pool2d): output (oy, ox) takes
// the max over rows [floor(oy * H / OH), ceil((oy + 1) * H / OH)) and the same for columns,
// and records where: the flat index h * W + w of the first maximum in row-major order (a
// later equal value does not replace it, as in PyTorch).
// Shapes: x [N, H, W, C] from element xo of its binding; y and arg [N, OH, OW, C] from
// elements yo and ao (arg i32).
// Params: n = threads (N_chunk * OH * OW * C), H, W, OH, OW, C, xo, yo, ao.
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes output element t.
// Bindings: 0 x (read), 1 y (write), 2 arg (write), 3 params.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> arg: array<i32>;
struct Params { n: u32, H: u32, W: u32, OH: u32, OW: u32, C: u32, xo: u32, yo: u32, ao: u32 }
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let c = t % params.C;
  var r = t / params.C;
  let ox = r % params.OW;
  r = r / params.OW;
  let oy = r % params.OH;
  let b = r / params.OH;
  let h0 = (oy * params.H) / params.OH;
  let h1 = ((oy + 1u) * params.H + params.OH - 1u) / params.OH;
  let w0 = (ox * params.W) / params.OW;
  let w1 = ((ox + 1u) * params.W + params.OW - 1u) / params.OW;
  var best = bitcast<f32>(0xff800000u); // -inf
  var at = h0 * params.W + w0;
  for (var h = h0; h < h1; h++) {
    for (var w = w0; w < w1; w++) {
      let v = x[params.xo + ((b * params.H + h) * params.W + w) * params.C + c];
      if (v > best) {
        best = v;
        at = h * params.W + w;
      }
    }
  }
  y[params.yo + t] = best;
  arg[params.ao + t] = i32(at);
}
