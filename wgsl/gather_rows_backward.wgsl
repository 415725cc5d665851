{{ENABLE}}
// Table gradient of gatherRows for one window of table rows, through the inverse map
// (no atomics, deterministic). Shared table [N, C]: dtable[n, c] = sum over b (ascending)
// of g[b, inv[b, n], c] where inv[b, n] >= 0; B loop trips per thread. Per-sample table
// [B, N, C] seen as [B*N, C]: dtable[r, c] = g[r / N, inv[r], c], or 0 where inv[r] < 0.
// g and dtable are stored as T (f32, or f16 for a per-sample table of f16 activations); the
// sum is f32.
// g may be bound in windows of positions p0 .. p0+pw-1 (a gradient larger than one storage
// binding): each window's dispatch adds the terms of its positions, continuing the sum that
// the earlier windows stored (first = 0), in the same order as one pass, so the bits are
// those of the unsplit sum for an f32 table; a per-sample row takes its one term in the
// window that holds it.
// Shapes: inv [B, N] i32, g window [pw, C] (positions p0 .. of [B, K, C]), dtable window
// [wrows, C] holding table rows row0 .. row0+wrows-1. Params: wrows, row0, c, n = N,
// batch = B, perB = K, isShared (1 for a shared table), p0, pw, first (1 for g's first
// window).
// Dispatch: grid(wrows * c, 256) workgroups of 256 threads; thread t handles
// dtable[t / c, t % c].
// Bindings: 0 inv (read), 1 g (read), 2 dtable (write), 3 params.
@group(0) @binding(0) var<storage, read> inv: array<i32>;
@group(0) @binding(1) var<storage, read> g: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> dtable: array<{{T}}>;
struct Params {
  wrows: u32, row0: u32, c: u32, n: u32, batch: u32, perB: u32, isShared: u32, p0: u32, pw: u32,
  first: u32,
}
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= params.wrows * params.c) { return; }
  let row = params.row0 + t / params.c;
  let ch = t % params.c;
  var acc = 0.0;
  if (params.first == 0u) { acc = f32(dtable[t]); }
  let pEnd = params.p0 + params.pw;
  if (params.isShared == 1u) {
    // The samples whose positions the window holds, ascending.
    let bEnd = min(params.batch, (pEnd + params.perB - 1u) / params.perB);
    for (var b = params.p0 / params.perB; b < bEnd; b++) {
      let k = inv[b * params.n + row];
      let p = b * params.perB + u32(k);
      if (k >= 0 && p >= params.p0 && p < pEnd) { acc += f32(g[(p - params.p0) * params.c + ch]); }
    }
  } else {
    let k = inv[row];
    let p = (row / params.n) * params.perB + u32(k);
    if (k >= 0 && p >= params.p0 && p < pEnd) { acc = f32(g[(p - params.p0) * params.c + ch]); }
  }
  dtable[t] = {{T}}(acc);
}
