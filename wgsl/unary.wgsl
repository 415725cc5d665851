{{ENABLE}}
// Elementwise unary op y = f(x), one table entry of src/ops/elementwise.ts.
// Shapes: x [n], y [n] (any shape, contiguous). Params: n; a, b (op constants, e.g. clamp
// bounds or affine scale/shift).
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i handles element i.
// Element type: T (f32, or f16 activations) for x and y; the snippet evaluates in f32.
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{T}}>;
struct Params { n: u32, a: f32, b: f32 }
@group(0) @binding(2) var<uniform> params: Params;

{{FUNCS}}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n) { return; }
  let v = f32(x[i]);
  let a = params.a;
  let b = params.b;
  y[i] = {{T}}({{EXPR}});
}
