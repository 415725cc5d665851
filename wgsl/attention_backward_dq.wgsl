// Attention backward, dQ over one key source (the cache or the own keys; the op dispatches
// once per source, the second accumulating): one thread per (batch, head, query row) loops
// over the source's keys, recomputing p = exp(s - lse) from the saved logsumexp:
// dQ_i (+)= scale * sum_j p_ij (dO_i . V_j - delta_i) K_j. Masked keys are skipped.
// Shapes: Q, dO, dQ [B, Nq, H*D]; KS, VS [B, nkeys, H*D] (ROW / DU as in
// attention_forward.wgsl); keyMask [B, maskStride], this source's keys at columns
// maskOff .. maskOff+nkeys-1; stats [B, H, Nq] of (lse, delta). Loops over D are unrolled by
// src/ops/attention.ts; the loop over keys makes nkeys trips.
// Params: rows = B*H*Nq, nq, heads, nkeys, maskOff, maskStride, scale, accumulate (0: write
// dQ, 1: add to it).
// Dispatch: grid(rows, 64); thread t -> (b, h, i) with t = (b*H + h)*Nq + i.
// Bindings: 0 Q, 1 KS, 2 VS, 3 keyMask (read; any buffer when HAS_MASK is false), 4 stats,
// 5 dO (read), 6 dQ (write), 7 params.
@group(0) @binding(0) var<storage, read> Q: array<{{ROW}}>;
@group(0) @binding(1) var<storage, read> KS: array<{{ROW}}>;
@group(0) @binding(2) var<storage, read> VS: array<{{ROW}}>;
@group(0) @binding(3) var<storage, read> keyMask: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> dO: array<{{ROW}}>;
@group(0) @binding(6) var<storage, read_write> dQ: array<{{ROW}}>;
struct Params {
  rows: u32, nq: u32, heads: u32, nkeys: u32, maskOff: u32, maskStride: u32, scale: f32,
  accumulate: u32,
}
@group(0) @binding(7) var<uniform> params: Params;

fn attends(b: u32, j: u32) -> bool {
  if (!{{HAS_MASK}}) { return true; }
  return keyMask[b * params.maskStride + params.maskOff + j] != 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.rows) { return; }
  let i = t % params.nq;
  let h = (t / params.nq) % params.heads;
  let b = t / (params.nq * params.heads);
  let rs = params.heads * {{DU}}u;
  let qb = (b * params.nq + i) * rs + h * {{DU}}u;
  let st = stats[t];
{{LOAD_Q}}
{{LOAD_DO}}
{{ZERO_DQ}}
  for (var j = 0u; j < params.nkeys; j++) {
    if (!attends(b, j)) { continue; }
    let kb = (b * params.nkeys + j) * rs + h * {{DU}}u;
    let p = exp(params.scale * ({{DOT_Q_K}}) - st.x);
    let ds = p * (({{DOT_DO_V}}) - st.y);
{{ACC_DQ}}
  }
{{STORE_DQ}}
}
