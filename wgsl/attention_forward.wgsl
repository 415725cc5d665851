{{ENABLE}}
// Head rows (ROW) are stored as f32, or f16 activations (ENABLE is then `enable f16;`): loads
// widen to f32 and stores round, so scores, the softmax, its statistics and the accumulators
// are f32; keyMask, lse and stats are f32; workgroup tiles (WROW) hold f32 rows.
// Multi-head scaled dot-product attention, forward: one thread per (batch, head, group of R
// query rows), an online softmax over the keys [cached keys ; own keys] (never a score matrix
// in memory), saving each row's logsumexp for the backward pass. Each key and value row is
// loaded once per thread and used for its R query rows (R > 1 on CPU adapters, where a load
// costs far more than an FMA; R = 1 keeps the most threads on GPUs).
// Shapes (row-major, heads contiguous inside a row, head h at columns h*D .. h*D+D-1):
// Q [B, Nq, H*D]; K, V [B, Nk, H*D]; KC, VC (cache) [B, Nc, H*D]; keyMask [B, Nc+Nk]
// (0 = masked); O [B, Nq, H*D]; lse [B, H, Nq]. ROW is vec4<f32> when D % 4 == 0 (then
// indices count vec4s and DU = D/4), else f32 (DU = D). The per-row code is unrolled by
// src/ops/attention.ts (SETUP, STEP_C, STEP, STORE: q rows in registers q{r}x*, running max
// m{r}, sum l{r}, accumulators a{r}x*); only the loops over keys remain (Nc + Nk trips).
// A row whose keys are all masked gets O = 0 and lse = 0.
// Params: threads = B*H*ceil(Nq/R), nq, heads, nc, nk, scale.
// Dispatch: grid(threads, 64); thread t -> (b, h, g) with t = (b*H + h)*ceil(Nq/R) + g, rows
// g*R .. g*R+R-1 (those >= Nq are computed on a clamped row and not stored).
// Bindings: 0 Q, 1 K, 2 V, 3 KC, 4 VC, 5 keyMask (read; any buffer when unused: nc = 0, or
// HAS_MASK false), 6 O (write), 7 lse (write), 8 params.
@group(0) @binding(0) var<storage, read> Q: array<{{ROW}}>;
@group(0) @binding(1) var<storage, read> K: array<{{ROW}}>;
@group(0) @binding(2) var<storage, read> V: array<{{ROW}}>;
@group(0) @binding(3) var<storage, read> KC: array<{{ROW}}>;
@group(0) @binding(4) var<storage, read> VC: array<{{ROW}}>;
@group(0) @binding(5) var<storage, read> keyMask: array<f32>;
@group(0) @binding(6) var<storage, read_write> O: array<{{ROW}}>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;
struct Params { threads: u32, nq: u32, heads: u32, nc: u32, nk: u32, scale: f32 }
@group(0) @binding(8) var<uniform> params: Params;

fn attends(b: u32, j: u32) -> bool {
  if (!{{HAS_MASK}}) { return true; }
  return keyMask[b * (params.nc + params.nk) + j] != 0.0;
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
  // Running max m, l = sum exp(s - m), acc = sum exp(s - m) * v per row; rescaled when m grows.
{{SETUP}}
  for (var j = 0u; j < params.nc; j++) {
    if (!attends(b, j)) { continue; }
    let kb = (b * params.nc + j) * rs + h * {{DU}}u;
{{STEP_C}}
  }
  for (var j = 0u; j < params.nk; j++) {
    if (!attends(b, params.nc + j)) { continue; }
    let kb = (b * params.nk + j) * rs + h * {{DU}}u;
{{STEP}}
  }
{{STORE}}
}
