{{ENABLE}}
// Batched matrix multiply for real GPUs: C[b] = op(A[b]) @ op(B[b]) (+ bias) (+ beta*C), with
// workgroup-memory tiles and register blocking. A workgroup computes a BM x BN block of C:
// per step of BK along K its threads stage the A and B tiles in workgroup memory (zero outside
// the matrices, so any sizes work), then each thread accumulates an 8 x 8 sub-block held as
// 2 x 2 groups of 4 rows / 4 columns (row groups ty*4 and BM/2 + ty*4, column groups tx*4 and
// BN/2 + tx*4: neighbouring threads read neighbouring vec4s of the tiles). Tiles are stored
// as SDT (f32, or f16 with shader-f16: half the workgroup memory and bandwidth, the products
// still accumulated in f32). Loads, the unrolled BK-step body and the stores are generated
// by src/ops/matmul.ts (per transpose: A stored [M, K] or [K, M], B stored [K, N] or [N, K]).
// Shapes: op(A) [M, K], op(B) [K, N], C [M, N] per batch; batch strides sa, sb (0 = shared)
// and M*N for C; bias [N] when HAS_BIAS. Params: M, N, K, batch, sa, sb, beta, and the range
// [k0, k1) of K summed by this dispatch (long K is split on adapters with a loop limit).
// Dispatch: grid(batch * ceil(M/BM) * ceil(N/BN), 1) workgroups of WG = (BM/8)*(BN/8)
// threads; workgroup w -> (batch, row block, column block), column blocks fastest.
// Bindings: 0 A (read), 1 B (read), 2 bias (read; any buffer when unused), 3 C (write), 4 params.
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
struct Params { M: u32, N: u32, K: u32, batch: u32, sa: u32, sb: u32, beta: f32, k0: u32, k1: u32 }
@group(0) @binding(4) var<uniform> params: Params;

// The A tile k-major [BK][BM] and the B tile [BK][BN], as vec4 rows.
var<workgroup> As: array<vec4<{{SDT}}>, {{AS_LEN}}>;
var<workgroup> Bs: array<vec4<{{SDT}}>, {{BS_LEN}}>;

fn a_at(base: u32, r: u32, k: u32) -> f32 {
  if (r >= params.M || k >= params.k1) { return 0.0; }
  if ({{TRANS_A}}) { return A[base + k * params.M + r]; }
  return A[base + r * params.K + k];
}
fn b_at(base: u32, k: u32, c: u32) -> f32 {
  if (c >= params.N || k >= params.k1) { return 0.0; }
  if ({{TRANS_B}}) { return B[base + c * params.K + k]; }
  return B[base + k * params.N + c];
}

@compute @workgroup_size({{WG}})
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  let blocksN = (params.N + {{BN}}u - 1u) / {{BN}}u;
  let blocksM = (params.M + {{BM}}u - 1u) / {{BM}}u;
  let perBatch = blocksM * blocksN;
  let bi = w / perBatch;
  // Uniform per workgroup, so every thread reaches the barriers or none does.
  if (bi >= params.batch) { return; }
  let rem = w % perBatch;
  let m0 = (rem / blocksN) * {{BM}}u;
  let n0 = (rem % blocksN) * {{BN}}u;
  let aBase = bi * params.sa;
  let bBase = bi * params.sb;
  let cBase = bi * params.M * params.N;
  let tx = tid % {{TX}}u;
  let ty = tid / {{TX}}u;
{{ZERO}}
  for (var kt = params.k0; kt < params.k1; kt += {{BK}}u) {
{{LOAD_TILES}}
    workgroupBarrier();
{{COMPUTE}}
    workgroupBarrier();
  }
{{STORE}}
}
