// Device ceiling: the FMA rate. Each thread keeps NACC independent vec4 accumulators in
// registers and applies acc = fma(acc, m, c) to each of them UNROLL times per loop trip, so
// the work is arithmetic with no memory traffic but one store per thread (the sum, to keep
// the compiler from removing the loop). FLOPs = threads * iters * UNROLL * NACC * 4 * 2.
// Params: threads, iters (loop trips; keep under llvmpipe's 65535), m, c (|m| < 1 so the
// values stay finite).
// Dispatch: grid(threads, 64).
// Bindings: 0 out [threads] of vec4 (write), 1 params.
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
struct Params { threads: u32, iters: u32, m: f32, c: f32 }
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.threads) { return; }
  let m = vec4<f32>(params.m);
  let c = vec4<f32>(params.c);
{{INIT}}
  for (var i = 0u; i < params.iters; i++) {
{{BODY}}
  }
  out[t] = {{SUM}};
}
