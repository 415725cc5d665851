{{ENABLE}}
// Head rows (ROW) are stored as f32, or f16 activations (ENABLE is then `enable f16;`): loads
// widen to f32 and stores round, so scores, the softmax, its statistics and the accumulators
// are f32; keyMask, lse and stats are f32; workgroup tiles (WROW) hold f32 rows.
// Attention backward, step 1: per (batch, head, query row) the statistics the other backward
// kernels share: stats[t] = (lse, delta) with delta = rowsum(dO * O) over the head's D columns
// (the softmax-backward term sum_j p_ij dp_ij).
// Shapes: O, dO [B, Nq, H*D] (ROW / DU as in attention_forward.wgsl); lse [B, H, Nq];
// stats [B, H, Nq] of vec2. The loop over D is unrolled by src/ops/attention.ts (DELTA).
// Params: rows = B*H*Nq, nq, heads.
// Dispatch: grid(rows, 64); thread t -> (b, h, i) with t = (b*H + h)*Nq + i.
// Bindings: 0 O (read), 1 lse (read), 2 dO (read), 3 stats (write), 4 params.
@group(0) @binding(0) var<storage, read> O: array<{{ROW}}>;
@group(0) @binding(1) var<storage, read> lse: array<f32>;
@group(0) @binding(2) var<storage, read> dO: array<{{ROW}}>;
@group(0) @binding(3) var<storage, read_write> stats: array<vec2<f32>>;
struct Params { rows: u32, nq: u32, heads: u32 }
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.rows) { return; }
  let i = t % params.nq;
  let h = (t / params.nq) % params.heads;
  let b = t / (params.nq * params.heads);
  let qb = (b * params.nq + i) * params.heads * {{DU}}u + h * {{DU}}u;
  stats[t] = vec2<f32>(lse[t], {{DELTA}});
}
