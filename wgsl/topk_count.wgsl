// Per row and chunk, the number of keys greater than the threshold key T and equal to it
// (the compaction counts of topkIndices; chunk loop trips).
// Shapes: scores [B, n] (raw u32 bits), state [B, 2] u32 (T, need), counts [B, chunks, 2]
// u32 (greater, equal). Params: batch, n, chunks, chunk.
// Dispatch: grid(batch * chunks, 64) workgroups of 64 threads; thread t handles row
// t / chunks, chunk t % chunks.
// Bindings: 0 scores (read), 1 state (read), 2 counts (write), 3 params.
@group(0) @binding(0) var<storage, read> scores: array<u32>;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;
struct Params { batch: u32, n: u32, chunks: u32, chunk: u32 }
@group(0) @binding(3) var<uniform> params: Params;

{{KEY_FN}}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.batch * params.chunks) { return; }
  let b = t / params.chunks;
  let start = (t % params.chunks) * params.chunk;
  let end = min(start + params.chunk, params.n);
  let thr = state[2u * b];
  var gt = 0u;
  var eq = 0u;
  for (var i = start; i < end; i++) {
    let key = key_of(scores[b * params.n + i]);
    gt += select(0u, 1u, key > thr);
    eq += select(0u, 1u, key == thr);
  }
  counts[2u * t] = gt;
  counts[2u * t + 1u] = eq;
}
