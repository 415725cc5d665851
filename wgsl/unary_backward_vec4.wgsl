{{ENABLE}}
// Backward of an elementwise unary op, four elements per thread: dx = dy * f'(x) with f' from
// the op table applied to each component (the vec4 fast path of src/ops/elementwise.ts for
// sizes that are a multiple of 4; bit for bit the results of unary_backward.wgsl).
// Shapes: x, y (the forward output), dy, dx all [n] viewed as n/4 vec4s. Params: n4 = n/4;
// a, b (op constants).
// Dispatch: grid(n4, 256) workgroups of 256 threads; thread i handles elements 4i .. 4i+3.
// Element type: T (f32, or f16 activations) for every binding; the derivative evaluates in f32.
// Bindings: 0 x (read), 1 y (read), 2 dy (read), 3 dx (write), 4 params.
@group(0) @binding(0) var<storage, read> x: array<vec4<{{T}}>>;
@group(0) @binding(1) var<storage, read> y: array<vec4<{{T}}>>;
@group(0) @binding(2) var<storage, read> dy: array<vec4<{{T}}>>;
@group(0) @binding(3) var<storage, read_write> dx: array<vec4<{{T}}>>;
struct Params { n4: u32, a: f32, b: f32 }
@group(0) @binding(4) var<uniform> params: Params;

{{FUNCS}}

fn df(v: f32, out: f32, g: f32, a: f32, b: f32) -> f32 {
  return {{DERIV}};
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n4) { return; }
  let xv = vec4<f32>(x[i]);
  let yv = vec4<f32>(y[i]);
  let gv = vec4<f32>(dy[i]);
  let a = params.a;
  let b = params.b;
  dx[i] = vec4<{{T}}>(vec4<f32>(
    df(xv.x, yv.x, gv.x, a, b),
    df(xv.y, yv.y, gv.y, a, b),
    df(xv.z, yv.z, gv.z, a, b),
    df(xv.w, yv.w, gv.w, a, b),
  ));
}
