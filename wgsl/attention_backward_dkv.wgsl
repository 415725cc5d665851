{{ENABLE}}
// Head rows (ROW) are stored as f32, or f16 activations (ENABLE is then `enable f16;`): loads
// widen to f32 and stores round, so scores, the softmax, its statistics and the accumulators
// are f32; keyMask, lse and stats are f32; workgroup tiles (WROW) hold f32 rows.
// Attention backward, dK and dV of one key source (the cache or the own keys; the op
// dispatches once per source): one thread per (batch, head, group of R key rows) loops over
// the queries, recomputing p = exp(s - lse) from the saved logsumexp:
// dV_j = sum_i p_ij dO_i, dK_j = scale * sum_i p_ij (dO_i . V_j - delta_i) Q_i.
// A masked key gets zero gradients (its p is zeroed). Each query and dO row is loaded once per
// thread for its R key rows (R > 1 on CPU adapters).
// Shapes: Q, dO [B, Nq, H*D]; KS, VS, dK, dV [B, nkeys, H*D] (ROW / DU as in
// attention_forward.wgsl); keyMask [B, maskStride], this source's keys at columns
// maskOff .. maskOff+nkeys-1; stats [B, H, Nq] of (lse, delta). The per-row code is unrolled
// by src/ops/attention.ts (SETUP, STEP, STORE); the loop over queries makes Nq trips.
// Params: threads = B*H*ceil(nkeys/R), nq, heads, nkeys, maskOff, maskStride, scale.
// Dispatch: grid(threads, 64); thread t -> (b, h, g) with t = (b*H + h)*ceil(nkeys/R) + g,
// key rows g*R .. g*R+R-1 (those >= nkeys are computed on a clamped row and not stored).
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
  threads: u32, nq: u32, heads: u32, nkeys: u32, maskOff: u32, maskStride: u32, scale: f32,
}
@group(0) @binding(8) var<uniform> params: Params;

fn attends(b: u32, j: u32) -> bool {
  if (!{{HAS_MASK}}) { return true; }
  return keyMask[b * params.maskStride + params.maskOff + j] != 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.threads) { return; }
  let groups = (params.nkeys + {{R}}u - 1u) / {{R}}u;
  let j0 = (t % groups) * {{R}}u;
  let bh = t / groups;
  let h = bh % params.heads;
  let b = bh / params.heads;
  let rs = params.heads * {{DU}}u;
{{SETUP}}
  for (var i = 0u; i < params.nq; i++) {
    let qb = (b * params.nq + i) * rs + h * {{DU}}u;
    let st = stats[bh * params.nq + i];
{{STEP}}
  }
{{STORE}}
}
