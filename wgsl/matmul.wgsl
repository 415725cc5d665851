// Batched matrix multiply, register-blocked: C[b] = op(A[b]) @ op(B[b]) (+ bias) (+ beta*C).
// Each thread computes a TM x TN tile of C held in vec4 registers, reading A and B straight
// from memory (no workgroup memory: fastest on CPU adapters such as llvmpipe).
// Shapes: op(A) [M, K], op(B) [K, N], C [M, N] per batch; A stored [M, K] or, with TRANS_A,
// [K, M]; B stored [K, N] or, with TRANS_B, [N, K]. Batch strides sa, sb (0 = shared) and
// M*N for C. bias [N] when HAS_BIAS. Params: M, N, K, batch, sa, sb, beta, and the range
// [k0, k1) of K summed by this dispatch (long K is split: llvmpipe stops loops at 65535).
// Dispatch: grid(batch * ceil(M/TM) * ceil(N/TN), 64); thread t -> (batch, row tile, col tile).
// Bindings: 0 A (read), 1 B (read), 2 bias (read; any buffer when unused), 3 C (write), 4 params.
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
struct Params { M: u32, N: u32, K: u32, batch: u32, sa: u32, sb: u32, beta: f32, k0: u32, k1: u32 }
@group(0) @binding(4) var<uniform> params: Params;

fn a_at(base: u32, r: u32, k: u32) -> f32 {
  if ({{TRANS_A}}) { return A[base + k * params.M + r]; }
  return A[base + r * params.K + k];
}
fn b_at(base: u32, k: u32, c: u32) -> f32 {
  if ({{TRANS_B}}) { return B[base + c * params.K + k]; }
  return B[base + k * params.N + c];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  let tilesN = (params.N + {{TN}}u - 1u) / {{TN}}u;
  let tilesM = (params.M + {{TM}}u - 1u) / {{TM}}u;
  let perBatch = tilesM * tilesN;
  let bi = t / perBatch;
  if (bi >= params.batch) { return; }
  let rem = t % perBatch;
  let row0 = (rem / tilesN) * {{TM}}u;
  let col0 = (rem % tilesN) * {{TN}}u;
  let aBase = bi * params.sa;
  let bBase = bi * params.sb;
  let cBase = bi * params.M * params.N;
  let lastR = params.M - 1u;
  let lastC = params.N - 1u;
{{SETUP}}
  for (var k = params.k0; k < params.k1; k++) {
{{INNER}}
  }
{{STORE}}
}
