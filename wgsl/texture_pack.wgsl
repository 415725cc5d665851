{{ENABLE}}
// Fills a texture from a tensor (src/ops/texture.ts; read by the `texture` matmul,
// matmul_vec4.wgsl, and the texture attention forward): texel (x, b * R + r) = floats
// 4x..4x+3 of row r of the [R, K] matrix op(src[b]), zero past K, so every operand layout
// reaches the kernel as rows along K. The source is stored [R, K] (TRANS false) or
// [K, R] (TRANS true: a transpose). Each thread writes one texel, reading 4 scalars; with
// TRANS the threads of a row of texels run along r, so neighbouring lanes read neighbouring
// floats.
// Shapes: src [batch, R, K] or [batch, K, R] with batch stride `stride`; the texture has at
// least kq = ceil(K/4) texels per row and batch * R rows.
// Params: R, K, kq, batch, stride.
// Dispatch: grid(batch * R * kq, 64).
// Element type: T (f32, or f16 activations) of src; texels are f32 (f16 widens exactly).
// Bindings: 0 src (read), 1 dst (texture-write), 2 params.
@group(0) @binding(0) var<storage, read> src: array<{{T}}>;
@group(0) @binding(1) var dst: texture_storage_2d<rgba32float, write>;
struct Params { R: u32, K: u32, kq: u32, batch: u32, stride: u32 }
@group(0) @binding(2) var<uniform> params: Params;

fn at(base: u32, r: u32, k: u32) -> f32 {
  if (k >= params.K) { return 0.0; }
  if ({{TRANS}}) { return f32(src[base + k * params.R + r]); }
  return f32(src[base + r * params.K + k]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  let rows = params.batch * params.R;
  if (t >= rows * params.kq) { return; }
  var x = t % params.kq;
  var y = t / params.kq;
  if ({{TRANS}}) {
    x = t / rows;
    y = t % rows;
  }
  let r = y % params.R;
  let base = (y / params.R) * params.stride;
  let k = 4u * x;
  let v = vec4<f32>(at(base, r, k), at(base, r, k + 1u), at(base, r, k + 2u), at(base, r, k + 3u));
  textureStore(dst, vec2u(x, y), v);
}
