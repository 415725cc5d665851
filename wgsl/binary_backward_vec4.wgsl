{{ENABLE}}
// Gradient of an elementwise binary op for one operand, on operands of one shape, four
// elements per thread: d = f'(p, q, g) per component (the vec4 fast path of
// src/ops/elementwise.ts: no broadcasting, so no reduction follows; bit for bit the results
// of binary_backward.wgsl).
// Shapes: p, q, g, d [n] (one shape) viewed as n/4 vec4s. Params: n4 = n/4.
// Dispatch: grid(n4, 256) workgroups of 256 threads; thread i handles elements 4i .. 4i+3.
// Element types: TP, TQ, TG, TZ per binding (f32, or f16 activations); math in f32.
// Bindings: 0 p (read), 1 q (read), 2 g (read), 3 d (write), 4 params.
@group(0) @binding(0) var<storage, read> p: array<vec4<{{TP}}>>;
@group(0) @binding(1) var<storage, read> q: array<vec4<{{TQ}}>>;
@group(0) @binding(2) var<storage, read> gr: array<vec4<{{TG}}>>;
@group(0) @binding(3) var<storage, read_write> d: array<vec4<{{TZ}}>>;
struct Params { n4: u32 }
@group(0) @binding(4) var<uniform> params: Params;

{{FUNCS}}

fn df(u: f32, v: f32, g: f32) -> f32 {
  return {{EXPR}};
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n4) { return; }
  let pv = vec4<f32>(p[i]);
  let qv = vec4<f32>(q[i]);
  let gv = vec4<f32>(gr[i]);
  d[i] = vec4<{{TZ}}>(vec4<f32>(
    df(pv.x, qv.x, gv.x),
    df(pv.y, qv.y, gv.y),
    df(pv.z, qv.z, gv.z),
    df(pv.w, qv.w, gv.w),
  ));
}
