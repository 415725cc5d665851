{{ENABLE}}
// Head rows (ROW) are stored as f32, or f16 activations (ENABLE is then `enable f16;`): loads
// widen to f32 and stores round, so scores, the softmax, its statistics and the accumulators
// are f32; keyMask, lse and stats are f32; workgroup tiles (WROW) hold f32 rows.
// Attention backward, dQ over one key source (the cache or the own keys; the op dispatches
// once per source, the second accumulating): one thread per (batch, head, group of R query
// rows) loops over the source's keys, recomputing p = exp(s - lse) from the saved logsumexp:
// dQ_i (+)= scale * sum_j p_ij (dO_i . V_j - delta_i) K_j. Masked keys are skipped. Each key
// and value row is loaded once per thread for its R query rows (R > 1 on CPU adapters).
// Shapes: Q, dO, dQ [B, Nq, H*D]; KS, VS [B, nkeys, H*D] (ROW / DU as in
// attention_forward.wgsl); keyMask [B, maskStride], this source's keys at columns
// maskOff .. maskOff+nkeys-1; stats [B, H, Nq] of (lse, delta). The per-row code is unrolled
// by src/ops/attention.ts (SETUP, STEP, STORE); the loop over keys makes nkeys trips.
// Params: threads = B*H*ceil(Nq/R), nq, heads, nkeys, maskOff, maskStride, scale, accumulate
// (0: write dQ, 1: add to it).
// Dispatch: grid(threads, 64); thread t -> (b, h, g) with t = (b*H + h)*ceil(Nq/R) + g, rows
// g*R .. g*R+R-1 (those >= Nq are computed on a clamped row and not stored).
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
  threads: u32, nq: u32, heads: u32, nkeys: u32, maskOff: u32, maskStride: u32, scale: f32,
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
  if (t >= params.threads) { return; }
  let groups = (params.nq + {{R}}u - 1u) / {{R}}u;
  let i0 = (t % groups) * {{R}}u;
  let bh = t / groups;
  let h = bh % params.heads;
  let b = bh / params.heads;
  let rs = params.heads * {{DU}}u;
{{SETUP}}
  for (var j = 0u; j < params.nkeys; j++) {
    if (!attends(b, j)) { continue; }
    let kb = (b * params.nkeys + j) * rs + h * {{DU}}u;
{{STEP}}
  }
{{STORE}}
}
