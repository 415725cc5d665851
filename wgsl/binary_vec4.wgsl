{{ENABLE}}
// Elementwise binary op z = f(p, q) on operands of one shape, four elements per thread: the
// vec4 fast path of src/ops/elementwise.ts (no broadcasting, size a multiple of 4). f is the
// op's scalar snippet applied to each component, so the results are bit for bit those of
// binary.wgsl.
// Shapes: p, q, z [n] (one shape, contiguous) viewed as n/4 vec4s. Params: n4 = n/4.
// Dispatch: grid(n4, 256) workgroups of 256 threads; thread i handles elements 4i .. 4i+3.
// Element types: TP, TQ, TZ per binding (f32, or f16 activations); the snippet evaluates in f32.
// Bindings: 0 p (read), 1 q (read), 2 z (write), 3 params.
@group(0) @binding(0) var<storage, read> p: array<vec4<{{TP}}>>;
@group(0) @binding(1) var<storage, read> q: array<vec4<{{TQ}}>>;
@group(0) @binding(2) var<storage, read_write> z: array<vec4<{{TZ}}>>;
struct Params { n4: u32 }
@group(0) @binding(3) var<uniform> params: Params;

{{FUNCS}}

fn f(u: f32, v: f32) -> f32 {
  return {{EXPR}};
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n4) { return; }
  let pv = vec4<f32>(p[i]);
  let qv = vec4<f32>(q[i]);
  z[i] = vec4<{{TZ}}>(vec4<f32>(f(pv.x, qv.x), f(pv.y, qv.y), f(pv.z, qv.z), f(pv.w, qv.w)));
}
