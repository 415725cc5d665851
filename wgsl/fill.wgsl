{{ENABLE}}
// Fills a buffer window with one value.
// Shapes: y [n]. Params: n, value.
// Dispatch: grid(n, 256) workgroups of 256 threads; thread i writes element i.
// Bindings: 0 y (write), 1 params.
@group(0) @binding(0) var<storage, read_write> y: array<{{T}}>;
struct Params { n: u32, value: f32 }
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.n) { return; }
  y[i] = {{T}}(params.value);
}
