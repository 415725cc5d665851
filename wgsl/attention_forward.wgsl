// Multi-head scaled dot-product attention, forward: one thread per (batch, head, query row),
// an online softmax over the keys [cached keys ; own keys] (never a score matrix in memory),
// saving each row's logsumexp for the backward pass.
// Shapes (row-major, heads contiguous inside a row, head h at columns h*D .. h*D+D-1):
// Q [B, Nq, H*D]; K, V [B, Nk, H*D]; KC, VC (cache) [B, Nc, H*D]; keyMask [B, Nc+Nk]
// (0 = masked); O [B, Nq, H*D]; lse [B, H, Nq]. ROW is vec4<f32> when D % 4 == 0 (then
// indices count vec4s and DU = D/4), else f32 (DU = D). Loops over D are unrolled by
// src/ops/attention.ts (LOAD_Q .. STORE_O); only the loops over keys remain (Nc + Nk trips).
// A row whose keys are all masked gets O = 0 and lse = 0.
// Params: rows = B*H*Nq, nq, heads, nc, nk, scale.
// Dispatch: grid(rows, 64); thread t -> (b, h, i) with t = (b*H + h)*Nq + i.
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
struct Params { rows: u32, nq: u32, heads: u32, nc: u32, nk: u32, scale: f32 }
@group(0) @binding(8) var<uniform> params: Params;

fn attends(b: u32, j: u32) -> bool {
  if (!{{HAS_MASK}}) { return true; }
  return keyMask[b * (params.nc + params.nk) + j] != 0.0;
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
{{LOAD_Q}}
{{ZERO_ACC}}
  // Running max m, l = sum exp(s - m), acc = sum exp(s - m) * v; rescaled when m grows.
  var m = -3.0e38;
  var l = 0.0;
  for (var j = 0u; j < params.nc; j++) {
    if (!attends(b, j)) { continue; }
    let kb = (b * params.nc + j) * rs + h * {{DU}}u;
    let s = params.scale * ({{DOT_Q_KC}});
    if (s > m) {
      let corr = exp(m - s);
      l = l * corr;
{{RESCALE}}
      m = s;
    }
    let p = exp(s - m);
    l = l + p;
{{ACC_VC}}
  }
  for (var j = 0u; j < params.nk; j++) {
    if (!attends(b, params.nc + j)) { continue; }
    let kb = (b * params.nk + j) * rs + h * {{DU}}u;
    let s = params.scale * ({{DOT_Q_K}});
    if (s > m) {
      let corr = exp(m - s);
      l = l * corr;
{{RESCALE}}
      m = s;
    }
    let p = exp(s - m);
    l = l + p;
{{ACC_V}}
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
{{STORE_O}}
  lse[t] = select(0.0, m + log(l), l > 0.0);
}
