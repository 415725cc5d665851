{{ENABLE}}
// Backward of an elementwise unary op: dx = dy * f'(x), with f' from the op table.
// Shapes: x, y (the forward output), dy, dx all [n]. Params: n; a, b (op constants).
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i handles element i.
// Element type: T (f32, or f16 activations) for every binding; the derivative evaluates in f32.
// Bindings: 0 x (read), 1 y (read), 2 dy (read), 3 dx (write), 4 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read> y: array<{{T}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{T}}>;
@group(0) @binding(3) var<storage, read_write> dx: array<{{T}}>;
struct Params { n: u32, a: f32, b: f32 }
@group(0) @binding(4) var<uniform> params: Params;

{{FUNCS}}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n) { return; }
  let v = f32(x[i]);
  let out = f32(y[i]);
  let g = f32(dy[i]);
  let a = params.a;
  let b = params.b;
  dx[i] = {{T}}({{DERIV}});
}
