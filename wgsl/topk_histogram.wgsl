// Radix-select pass of topkIndices: per row and chunk of the row, a 256-bin histogram of
// one 8-bit digit of the order-preserving key of the scores, counting only the elements
// whose higher digits equal the prefix chosen by the previous passes (no atomics: each
// thread owns a private histogram). Keys: NaN -> 0 (lowest), -0 -> key of +0, else
// negative floats -> ~bits, positive -> bits | 0x80000000 (unsigned order = float order).
// Shapes: scores [B, n] (read as raw u32 bits), state [B, 2] u32 (prefix, remaining) from
// the previous pass, hist [B, chunks, 256] u32.
// Params: batch, n, chunks, chunk (elements per chunk; loop trips chunk + 256), shift
// (24, 16, 8, 0: the digit is (key >> shift) & 255), mask (the key bits above the digit),
// first (1 on the first pass: the prefix is 0 and state is not read).
// Dispatch: grid(batch * chunks, 64) workgroups of 64 threads; thread t handles row
// t / chunks, chunk t % chunks.
// Bindings: 0 scores (read), 1 state (read), 2 hist (write), 3 params.
@group(0) @binding(0) var<storage, read> scores: array<u32>;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<u32>;
struct Params {
  batch: u32, n: u32, chunks: u32, chunk: u32, shift: u32, mask: u32, first: u32,
}
@group(0) @binding(3) var<uniform> params: Params;

{{KEY_FN}}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.batch * params.chunks) { return; }
  let b = t / params.chunks;
  let start = (t % params.chunks) * params.chunk;
  let end = min(start + params.chunk, params.n);
  let prefix = select(state[2u * b], 0u, params.first == 1u);
  var h: array<u32, 256>;
  let row = b * params.n;
  for (var i = start; i < end; i++) {
    let key = key_of(scores[row + i]);
    if ((key & params.mask) == prefix) {
      let d = (key >> params.shift) & 255u;
      h[d] += 1u;
    }
  }
  for (var d = 0u; d < 256u; d++) { hist[t * 256u + d] = h[d]; }
}
