{{ENABLE}}
// Gradient of a broadcast binary op for one operand, before reduction to its shape:
// d[i] = f'(p[ip], q[iq], g[i]) over the broadcast output index i.
// Shapes: p, q broadcast to g and d [d0..d5]. Params: as binary.wgsl.
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i handles output element i.
// Element types: TP, TQ, TG, TZ per binding (f32, or f16 activations); math in f32.
// Bindings: 0 p (read), 1 q (read), 2 g (read), 3 d (write), 4 params.
@group(0) @binding(0) var<storage, read> p: array<{{TP}}>;
@group(0) @binding(1) var<storage, read> q: array<{{TQ}}>;
@group(0) @binding(2) var<storage, read> gr: array<{{TG}}>;
@group(0) @binding(3) var<storage, read_write> d: array<{{TZ}}>;
struct Params {
  n: u32, d0: u32, d1: u32, d2: u32, d3: u32, d4: u32, d5: u32,
  sp0: u32, sp1: u32, sp2: u32, sp3: u32, sp4: u32, sp5: u32,
  sq0: u32, sq1: u32, sq2: u32, sq3: u32, sq4: u32, sq5: u32,
}
@group(0) @binding(4) var<uniform> params: Params;

{{FUNCS}}

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
  let ip = c0 * params.sp0 + c1 * params.sp1 + c2 * params.sp2 + c3 * params.sp3 +
    c4 * params.sp4 + c5 * params.sp5;
  let iq = c0 * params.sq0 + c1 * params.sq1 + c2 * params.sq2 + c3 * params.sq3 +
    c4 * params.sq4 + c5 * params.sq5;
  let u = f32(p[ip]);
  let v = f32(q[iq]);
  let g = f32(gr[i]);
  d[i] = {{TZ}}({{EXPR}});
}
