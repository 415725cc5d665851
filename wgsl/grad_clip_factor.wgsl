// The global-norm clipping factor from per-buffer sums of squares (torch clip_grad_norm_):
//   norm = sqrt(sum_i sq[i]);  factor = min(1, max_norm / (norm + 1e-6))  (1 when max_norm
//   <= 0, i.e. no clipping). Writes out[0] = factor, out[1] = norm. A NaN/Inf norm yields a
//   NaN factor, which makes the AdamW kernel skip the step.
// Shapes: sq [count], out [2]. Params: count, max_norm.
// Dispatch: one workgroup of one thread (count is the number of table buffers, a handful).
// Bindings: 0 sq (read), 1 out (write), 2 params.
@group(0) @binding(0) var<storage, read> sq: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
struct Params { count: u32, max_norm: f32, has_loss: u32, inv_scale: f32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(1)
fn main() {
  var total = 0.0;
  for (var i = 0u; i < params.count; i++) { total += sq[i]; }
  let norm = sqrt(total) * params.inv_scale;
  var factor = params.inv_scale;
  if (params.max_norm > 0.0) { factor = min(1.0, params.max_norm / (norm + 1e-6)) * params.inv_scale; }
  // Non-finite norm or loss (tested on the bits, which fast-math cannot fold): a NaN factor.
  var bad = (bitcast<u32>(norm) & 0x7f800000u) == 0x7f800000u;
  if (params.has_loss != 0u) { bad = bad || (bitcast<u32>(sq[params.count]) & 0x7f800000u) == 0x7f800000u; }
  if (bad) { factor = bitcast<f32>(0x7fc00000u); }
  out[0] = factor;
  out[1] = norm;
}
