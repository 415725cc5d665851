{{ENABLE}}
// Strided copy of raw elements ({{T}}: u32 for the 4-byte f32, i32, u32; f16 for f16): the one kernel behind concat, slice,
// split, permute, transpose and their gradients. Thread i decodes its coordinates
// (c0..c5) in the iteration shape [d0..d5] and copies
//   y[yoff + sum_j cj * ysj] = x[xoff + sum_j cj * xsj].
// Shapes: x and y any arrays of the element; the iteration shape has n = d0*...*d5 elements
// (leading dims padded with 1). Params: n; dims d0..d5; element strides xs0..xs5 of x and
// ys0..ys5 of y per iteration dim; element offsets xoff, yoff.
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i copies iteration element i.
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{T}}>;
struct Params {
  n: u32, d0: u32, d1: u32, d2: u32, d3: u32, d4: u32, d5: u32,
  xs0: u32, xs1: u32, xs2: u32, xs3: u32, xs4: u32, xs5: u32,
  ys0: u32, ys1: u32, ys2: u32, ys3: u32, ys4: u32, ys5: u32,
  xoff: u32, yoff: u32,
}
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n) { return; }
  var r = i;
  let c5 = r % params.d5; r = r / params.d5;
  let c4 = r % params.d4; r = r / params.d4;
  let c3 = r % params.d3; r = r / params.d3;
  let c2 = r % params.d2; r = r / params.d2;
  let c1 = r % params.d1; r = r / params.d1;
  let c0 = r;
  let ix = params.xoff + c0 * params.xs0 + c1 * params.xs1 + c2 * params.xs2 +
    c3 * params.xs3 + c4 * params.xs4 + c5 * params.xs5;
  let iy = params.yoff + c0 * params.ys0 + c1 * params.ys1 + c2 * params.ys2 +
    c3 * params.ys3 + c4 * params.ys4 + c5 * params.ys5;
  y[iy] = x[ix];
}
