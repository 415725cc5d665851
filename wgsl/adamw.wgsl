// AdamW update of one contiguous parameter range (PyTorch torch.optim.AdamW semantics):
//   p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
// with g = grad * clip, clip = scalars[0] (the global-norm clipping factor, computed on the
// GPU; 1 without clipping). A non-finite clip factor (NaN/Inf gradients) skips the update.
// Shapes: p, g, m, v [n] (windows of the parameter / gradient / moment tables).
// Params: n, lr, b1, b2, eps, wd, bc1 = 1 - b1^t, bc2 = 1 - b2^t.
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i updates element i.
// Bindings: 0 p (write), 1 g (read), 2 m (write), 3 v (write), 4 scalars (read), 5 params.
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> scalars: array<f32>;
struct Params { n: u32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32 }
@group(0) @binding(5) var<uniform> params: Params;

// Finite test on the bits: fast-math compilers may fold float NaN comparisons away.
fn finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n) { return; }
  let clip = scalars[0];
  if (!finite(clip)) { return; }
  let grad = g[i] * clip;
  var w = p[i] * (1.0 - params.lr * params.wd);
  let mi = params.b1 * m[i] + (1.0 - params.b1) * grad;
  let vi = params.b2 * v[i] + (1.0 - params.b2) * grad * grad;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / sqrt(params.bc2) + params.eps;
  p[i] = w - (params.lr / params.bc1) * mi / denom;
}
