// Chooses the digit of topkIndices' radix select: scanning the row's digit histogram from
// 255 down, the digit d where the count of elements with a larger digit is < remaining <=
// that count plus total[b, d]. Elements with larger digits are all selected, so
// remaining -= their count and prefix |= d << shift. After the last pass (shift 0) the
// prefix is the key T of the k-th largest score and remaining is how many keys equal to T
// are taken (the first ones in index order). At most 256 loop trips.
// Shapes: total [B, 256] u32, state [B, 2] u32 (prefix, remaining), read then written.
// Params: batch, k, shift, first (1 on the first pass: prefix 0, remaining k).
// Dispatch: grid(batch, 64) workgroups of 64 threads; thread b handles row b.
// Bindings: 0 total (read), 1 state (write), 2 params.
@group(0) @binding(0) var<storage, read> total: array<u32>;
@group(0) @binding(1) var<storage, read_write> state: array<u32>;
struct Params { batch: u32, k: u32, shift: u32, first: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = gid.x + gid.y * nwg.x * 64u;
  if (b >= params.batch) { return; }
  let first = params.first == 1u;
  let prefix = select(state[2u * b], 0u, first);
  var remaining = select(state[2u * b + 1u], params.k, first);
  var digit = 0u;
  for (var d = 255i; d >= 0i; d--) {
    let c = total[b * 256u + u32(d)];
    if (c >= remaining) {
      digit = u32(d);
      break;
    }
    remaining -= c;
  }
  state[2u * b] = prefix | (digit << params.shift);
  state[2u * b + 1u] = remaining;
}
