{{ENABLE}}
// Packs a matmul operand for the vec4 kernel (matmul_vec4.wgsl reads both operands along K):
// dst[b] = the [R, K] matrix op(src[b]) as rows of Kp floats (Kp = K rounded up to a multiple
// of 4, zero-padded), so every row starts on a vec4. The source is stored [R, K] (TRANS
// false: only padding) or [K, R] (TRANS true: a transpose). Each thread writes a 4 x 4 block
// (four vec4 rows), reading 16 scalars.
// Shapes: src [batch, R, K] or [batch, K, R] with batch stride `stride`; dst [batch, R, Kp].
// Params: R, K, kp, batch, stride.
// Dispatch: grid(batch * ceil(R/4) * Kp/4, 64); thread t -> (b, row block, vec4 column).
// Element type: T (f32, or f16 activations) for src and dst.
// Bindings: 0 src (read), 1 dst (write, vec4), 2 params.
@group(0) @binding(0) var<storage, read> src: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<{{T}}>>;
struct Params { R: u32, K: u32, kp: u32, batch: u32, stride: u32 }
@group(0) @binding(2) var<uniform> params: Params;

fn at(base: u32, r: u32, k: u32) -> f32 {
  if (k >= params.K) { return 0.0; }
  if ({{TRANS}}) { return f32(src[base + k * params.R + r]); }
  return f32(src[base + r * params.K + k]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  let kq = params.kp / 4u;
  let blocks = (params.R + 3u) / 4u;
  let b = t / (blocks * kq);
  if (b >= params.batch) { return; }
  let rem = t % (blocks * kq);
  let r0 = (rem / kq) * 4u;
  let k0 = (rem % kq) * 4u;
  let base = b * params.stride;
  for (var i = 0u; i < 4u; i++) {
    let r = r0 + i;
    if (r < params.R) {
      dst[(b * params.R + r) * kq + k0 / 4u] =
        vec4<{{T}}>(vec4<f32>(at(base, r, k0), at(base, r, k0 + 1u), at(base, r, k0 + 2u), at(base, r, k0 + 3u)));
    }
  }
}
