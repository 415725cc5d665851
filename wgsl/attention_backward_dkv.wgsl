// Attention backward, dK and dV of one key source (the cache or the own keys; the op
// dispatches once per source): one thread per (batch, head, key row) loops over the queries,
// recomputing p = exp(s - lse) from the saved logsumexp:
// dV_j = sum_i p_ij dO_i, dK_j = scale * sum_i p_ij (dO_i . V_j - delta_i) Q_i.
// A masked key gets zero gradients.
// Shapes: Q, dO [B, Nq, H*D]; KS, VS, dK, dV [B, nkeys, H*D] (ROW / DU as in
// attention_forward.wgsl); keyMask [B, maskStride], this source's keys at columns
// maskOff .. maskOff+nkeys-1; stats [B, H, Nq] of (lse, delta). Loops over D are unrolled by
// src/ops/attention.ts; the loop over queries makes Nq trips.
// Params: rows = B*H*nkeys, nq, heads, nkeys, maskOff, maskStride, scale.
// Dispatch: grid(rows, 64); thread t -> (b, h, j) with t = (b*H + h)*nkeys + j.
// Bindings: 0 Q, 1 KS, 2 VS, 3 keyMask (read; any buffer when HAS_MASK is false), 4 stats,
// 5 dO (read), 6 dK, 7 dV (write), 8 params.
@group(0) @binding(0) var<storage, read> Q: array<{{ROW}}>;
@group(0) @binding(1) var<storage, read> KS: array<{{ROW}}>;
@group(0) @binding(2) var<storage, read> VS: array<{{ROW}}>;
@group(0) @binding(3) var<storage, read> keyMask: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> dO: array<{{ROW}}>;
@group(0) @binding(6) var<storage, read_write> dK: array<{{ROW}}>;
@group(0) @binding(7) var<storage, read_write> dV: array<{{ROW}}>;
struct Params {
  rows: u32, nq: u32, heads: u32, nkeys: u32, maskOff: u32, maskStride: u32, scale: f32,
}
@group(0) @binding(8) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.rows) { return; }
  let j = t % params.nkeys;
  let bh = t / params.nkeys;
  let h = bh % params.heads;
  let b = bh / params.heads;
  let rs = params.heads * {{DU}}u;
  let kb = (b * params.nkeys + j) * rs + h * {{DU}}u;
{{LOAD_K}}
{{LOAD_V}}
{{ZERO_DKV}}
  var nq = params.nq;
  if ({{HAS_MASK}} && keyMask[b * params.maskStride + params.maskOff + j] == 0.0) { nq = 0u; }
  for (var i = 0u; i < nq; i++) {
    let qb = (b * params.nq + i) * rs + h * {{DU}}u;
    let st = stats[bh * params.nq + i];
{{LOAD_QI}}
{{LOAD_DOI}}
    let p = exp(params.scale * ({{DOT_K_Q}}) - st.x);
    let ds = p * (({{DOT_V_DO}}) - st.y);
{{ACC_DKV}}
  }
{{STORE_DKV}}
}
