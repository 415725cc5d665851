{{ENABLE}}
// Elementwise unary op y = f(x), four elements per thread: the vec4 fast path of
// src/ops/elementwise.ts for sizes that are a multiple of 4 (vec4 loads and stores move 16
// bytes per access). f is the op's scalar snippet applied to each component, the same
// operations as unary.wgsl, so the results are bit for bit those of the scalar path.
// Shapes: x [n], y [n] (any shape, contiguous) viewed as n/4 vec4s. Params: n4 = n/4; a, b
// (op constants, e.g. clamp bounds or affine scale/shift).
// Dispatch: grid(n4, 256) workgroups of 256 threads; thread i handles elements 4i .. 4i+3.
// Element type: T (f32, or f16 activations) for x and y; the snippet evaluates in f32.
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<vec4<{{T}}>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<{{T}}>>;
struct Params { n4: u32, a: f32, b: f32 }
@group(0) @binding(2) var<uniform> params: Params;

{{FUNCS}}

fn f(v: f32, a: f32, b: f32) -> f32 {
  return {{EXPR}};
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n4) { return; }
  let xv = vec4<f32>(x[i]);
  let a = params.a;
  let b = params.b;
  y[i] = vec4<{{T}}>(vec4<f32>(f(xv.x, a, b), f(xv.y, a, b), f(xv.z, a, b), f(xv.w, a, b)));
}
