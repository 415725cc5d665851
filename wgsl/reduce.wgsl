{{ENABLE}}
// Strided reduction, split so that no loop runs more than CHUNK trips (llvmpipe stops
// loops after 65535): thread (o, p) reduces the reduced-index range [p*CHUNK, (p+1)*CHUNK)
// of output element o into y[o * parts + p]. A second dispatch over [n, parts] finishes when
// parts > 1.
// Shapes: x viewed as kept dims (k0..k3, strides ks0..ks3) times reduced dims (r0..r3,
// strides rs0..rs3), in elements; y [n, parts]. Params: n = number of outputs, parts,
// count = r0*r1*r2*r3, scale (multiplies the result; 1/count for a mean), one = 1.0.
// MODE: 0 sum (two-level: blocks of 64 summed, then the block sums; error ~(64 + n/64) ulp
// at worst, where a plain loop gives n ulp), 1 max, 2 sum of squares (blocked likewise).
// Dispatch: grid(n * parts, 64) workgroups of 64 threads.
// Element types: x {{TX}}, y {{TY}} (f32 or f16); accumulation in f32.
// Bindings: 0 x (read), 1 y (write), 2 params.
@group(0) @binding(0) var<storage, read> x: array<{{TX}}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{TY}}>;
struct Params {
  n: u32, parts: u32, count: u32, scale: f32,
  k0: u32, k1: u32, k2: u32, k3: u32, ks0: u32, ks1: u32, ks2: u32, ks3: u32,
  r0: u32, r1: u32, r2: u32, r3: u32, rs0: u32, rs1: u32, rs2: u32, rs3: u32,
}
@group(0) @binding(2) var<uniform> params: Params;

const CHUNK: u32 = {{CHUNK}}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.n * params.parts) { return; }
  let o = t / params.parts;
  let part = t % params.parts;
  var r = o;
  let c3 = r % params.k3; r = r / params.k3;
  let c2 = r % params.k2; r = r / params.k2;
  let c1 = r % params.k1; r = r / params.k1;
  let c0 = r;
  let base = c0 * params.ks0 + c1 * params.ks1 + c2 * params.ks2 + c3 * params.ks3;
  let start = part * CHUNK;
  let end = min(params.count, start + CHUNK);
  // Decode the first reduced index once, then step with carries.
  var q = start;
  var d3 = q % params.r3; q = q / params.r3;
  var d2 = q % params.r2; q = q / params.r2;
  var d1 = q % params.r1; q = q / params.r1;
  var d0 = q;
  var acc: f32 = select(0.0, -3.4028235e38, {{MODE}} == 1);
  var blk: f32 = 0.0;
  for (var i = start; i < end; i++) {
    let v = f32(x[base + d0 * params.rs0 + d1 * params.rs1 + d2 * params.rs2 + d3 * params.rs3]);
    if ({{MODE}} == 1) {
      acc = max(acc, v);
    } else {
      blk += select(v, v * v, {{MODE}} == 2);
      if (((i - start) & 63u) == 63u) {
        acc += blk;
        blk = 0.0;
      }
    }
    d3++;
    if (d3 == params.r3) {
      d3 = 0u;
      d2++;
      if (d2 == params.r2) {
        d2 = 0u;
        d1++;
        if (d1 == params.r1) {
          d1 = 0u;
          d0++;
        }
      }
    }
  }
  if ({{MODE}} != 1) { acc += blk; }
  y[t] = {{TY}}(acc * params.scale);
}
