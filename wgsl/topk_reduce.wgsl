// Sums topkIndices' per-chunk digit histograms: total[b, d] = sum over chunks of
// hist[b, chunk, d] (chunks loop trips).
// Shapes: hist [B, chunks, 256] u32, total [B, 256] u32. Params: batch, chunks.
// Dispatch: grid(batch * 256, 256) workgroups of 256 threads; thread t handles total[t].
// Bindings: 0 hist (read), 1 total (write), 2 params.
@group(0) @binding(0) var<storage, read> hist: array<u32>;
@group(0) @binding(1) var<storage, read_write> total: array<u32>;
struct Params { batch: u32, chunks: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= params.batch * 256u) { return; }
  let b = t / 256u;
  let d = t % 256u;
  var s = 0u;
  for (var c = 0u; c < params.chunks; c++) { s += hist[(b * params.chunks + c) * 256u + d]; }
  total[t] = s;
}
