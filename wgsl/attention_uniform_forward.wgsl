{{ENABLE}}
// Multi-head scaled dot-product attention, forward, for CPU adapters (llvmpipe): a workgroup
// owns one (batch, head) and a block of WG*R query rows (R per thread, thread l holding rows
// i0 + r*WG + l), so the key loop and every key and value address are the same for all its
// threads (computed from the workgroup id and the loop counter only). llvmpipe runs threads
// as SIMD lanes and every storage load lane by lane, so each key and value element a thread
// loads is made to serve its R query rows. Keys come in chunks of C: C scores per row, one
// rescale of the row's running sums per chunk (an online softmax over [cached keys ; own
// keys], never a score matrix in memory), then the C value rows accumulated. Each row's
// logsumexp is saved for the backward.
// Head rows (ROW) are stored as f32, or f16 activations (ENABLE is then `enable f16;`): loads
// widen to f32 and stores round, so scores, the softmax and the accumulators are f32;
// keyMask and lse are f32.
// Shapes (row-major, heads contiguous inside a row, head h at columns h*D .. h*D+D-1):
// Q [B, Nq, H*D]; K, V [B, Nk, H*D]; KC, VC (cache) [B, Nc, H*D]; keyMask [B, Nc+Nk]
// (0 = masked); O [B, Nq, H*D]; lse [B, H, Nq]. ROW is vec4<f32> when D % 4 == 0 (then
// indices count vec4s and DU = D/4), else f32 (DU = D). KV declares K, V, KC, VC: storage
// arrays of ROW, or (family `texture`, D % 4 == 0) rgba32float textures of the same rows
// (texel (x, b * N + j) = floats 4x..4x+3 of key row j: src/ops/texture.ts fills them),
// which llvmpipe fetches for all lanes at once instead of lane by lane; same sums, same
// bits. The per-row code is unrolled by src/ops/attention_uniform.ts (SETUP, CHUNK_C, CHUNK,
// STORE: q rows in registers q{r}x*, running max m{r}, sum l{r}, accumulators a{r}x*); only
// the loops over key chunks remain
// (ceil(Nc/C) + ceil(Nk/C) trips). A row whose keys are all masked gets O = 0 and lse = 0.
// Params: groups = B*H*ceil(Nq/(WG*R)), nq, heads, nc, nk, scale.
// Dispatch: grid(groups, 1); workgroup w -> (b, h, block) with w = (b*H + h)*blocks + block.
// Bindings: 0 Q, 1 K, 2 V, 3 KC, 4 VC (read, or textures; KC and VC any of their kind when
// nc = 0), 5 keyMask (read; any buffer when HAS_MASK is false), 6 O (write), 7 lse (write),
// 8 params.
@group(0) @binding(0) var<storage, read> Q: array<{{ROW}}>;
{{KV}}
@group(0) @binding(5) var<storage, read> keyMask: array<f32>;
@group(0) @binding(6) var<storage, read_write> O: array<{{ROW}}>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;
struct Params { groups: u32, nq: u32, heads: u32, nc: u32, nk: u32, scale: f32 }
@group(0) @binding(8) var<uniform> params: Params;

fn attends(b: u32, j: u32) -> bool {
  if (!{{HAS_MASK}}) { return true; }
  return keyMask[b * (params.nc + params.nk) + j] != 0.0;
}

@compute @workgroup_size({{WG}})
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= params.groups) { return; }
  let blocks = (params.nq + {{WG}}u * {{R}}u - 1u) / ({{WG}}u * {{R}}u);
  let i0 = (w % blocks) * {{WG}}u * {{R}}u + lane;
  let bh = w / blocks;
  let h = bh % params.heads;
  let b = bh / params.heads;
  let rs = params.heads * {{DU}}u;
  // Running max m, l = sum exp(s - m), acc = sum exp(s - m) * v per row; rescaled per chunk.
{{SETUP}}
  for (var j0 = 0u; j0 < params.nc; j0 += {{C}}u) {
{{CHUNK_C}}
  }
  for (var j0 = 0u; j0 < params.nk; j0 += {{C}}u) {
{{CHUNK}}
  }
{{STORE}}
}
