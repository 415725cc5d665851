// Table-driven resampling along the middle axis of [outer, L, inner], shared by every linear
// resize of src/ops/resize.ts (bicubic, antialiased bicubic, area, nearest) and by their
// gradients (the same kernel run with the transposed table):
//   y[o, d, i] = sum over k < count[d] of weight[d, k] * x[o, source[d, k], i].
// Shapes: x [outer, L, inner]; y [outer, Dtot, inner]; taps [Dtot, T + 1] i32 (per
// destination: count, then T source indices, unused ones 0); weight [Dtot, T] f32.
// A dispatch covers destinations d0 .. d0 + D - 1 of a run of outer slabs: its x window holds
// source rows lo .. of the chunk's first slab from element xo, its y window destination row
// d0 of the first slab from element yo. (Whole slabs: d0 = lo = 0 and D = Dtot; a slab too
// large for one binding is split into row ranges, one slab per dispatch.)
// Params: n = threads (outer slabs * D * inner of this chunk), D, L, inner, T (taps per row,
// the loop bound checked against the adapter's loop limit), d0, lo, xo, yo.
// Dispatch: grid(n, 64) workgroups of 64 threads; thread t writes element t of y's chunk.
// Bindings: 0 x (read), 1 taps (read), 2 weight (read), 3 y (write), 4 params.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> taps: array<i32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
struct Params {
  n: u32, D: u32, L: u32, inner: u32, T: u32, d0: u32, lo: u32, xo: u32, yo: u32,
}
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n) { return; }
  let i = t % params.inner;
  let r = t / params.inner;
  let d = params.d0 + r % params.D;
  let o = r / params.D;
  let row = d * (params.T + 1u);
  let count = u32(taps[row]);
  let base = params.xo + o * params.L * params.inner + i;
  var acc = 0.0;
  for (var k = 0u; k < count; k++) {
    let s = u32(taps[row + 1u + k]) - params.lo;
    acc += weight[d * params.T + k] * x[base + s * params.inner];
  }
  y[params.yo + t] = acc;
}
