// Writes topkIndices' output in ascending index order: per row and chunk, the selected
// indices are those with key > T, plus the first `need` with key == T in index order; the
// chunk's first output slot comes from the counts of the chunks before it (an exclusive
// prefix sum per thread: chunks + chunk loop trips).
// Shapes: scores [B, n] (raw u32 bits), state [B, 2] u32 (T, need), counts [B, chunks, 2]
// u32, out [B, k] i32. Params: batch, n, chunks, chunk, k.
// Dispatch: grid(batch * chunks, 64) workgroups of 64 threads; thread t handles row
// t / chunks, chunk t % chunks.
// Bindings: 0 scores (read), 1 state (read), 2 counts (read), 3 out (write), 4 params.
@group(0) @binding(0) var<storage, read> scores: array<u32>;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<i32>;
struct Params { batch: u32, n: u32, chunks: u32, chunk: u32, k: u32 }
@group(0) @binding(4) var<uniform> params: Params;

{{KEY_FN}}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.batch * params.chunks) { return; }
  let b = t / params.chunks;
  let c = t % params.chunks;
  let thr = state[2u * b];
  let need = state[2u * b + 1u];
  var gtBefore = 0u;
  var eqSeen = 0u;
  for (var j = b * params.chunks; j < t; j++) {
    gtBefore += counts[2u * j];
    eqSeen += counts[2u * j + 1u];
  }
  var pos = gtBefore + min(eqSeen, need);
  let start = c * params.chunk;
  let end = min(start + params.chunk, params.n);
  for (var i = start; i < end; i++) {
    let key = key_of(scores[b * params.n + i]);
    var take = key > thr;
    if (key == thr) {
      take = eqSeen < need;
      eqSeen++;
    }
    if (take && pos < params.k) {
      out[b * params.k + pos] = i32(i);
      pos++;
    }
  }
}
