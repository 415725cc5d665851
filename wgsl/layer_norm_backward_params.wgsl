{{ENABLE}}
// LayerNorm backward to weight and bias, first pass: column sums over a chunk of rows of x
// viewed as [O, C, I] (see layer_norm_forward.wgsl). Thread (k, c) sums rows
// [k*CHUNK, min(rows, (k+1)*CHUNK)): dw[k, c] = sum g * xhat, db[k, c] = sum g, with
// xhat = (x - mean[r]) * rstd[r]. With one chunk these are the gradients; otherwise the
// caller sums the [chunks, C] partials over chunks (a deterministic second pass, no atomics).
// x and g are stored as T (f32, or f16 activations); sums and dw, db in f32.
// Shapes: x, g [O*C*I]; mean, rstd [rows]; dw, db [chunks, C]. Params: rows = O*I, C, I,
// chunks = ceil(rows / CHUNK) (at least 1).
// Loop trips per invocation: CHUNK.
// Dispatch: grid(chunks * C, 64) workgroups of 64 threads; thread t -> (k = t / C, c = t % C).
// Bindings: 0 x (read), 1 g (read), 2 mean (read), 3 rstd (read), 4 dw (write), 5 db (write),
// 6 params.
@group(0) @binding(0) var<storage, read> x: array<{{T}}>;
@group(0) @binding(1) var<storage, read> g: array<{{T}}>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;
struct Params { rows: u32, C: u32, I: u32, chunks: u32 }
@group(0) @binding(6) var<uniform> params: Params;

const CHUNK: u32 = {{CHUNK}}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  let C = params.C;
  let I = params.I;
  if (t >= params.chunks * C) { return; }
  let k = t / C;
  let c = t % C;
  let start = k * CHUNK;
  let end = min(params.rows, start + CHUNK);
  // Row r = o*I + i; decode the first row once, then step i with a carry into o.
  var o = start / I;
  var i = start % I;
  var sw: f32 = 0.0;
  var sb: f32 = 0.0;
  for (var r = start; r < end; r++) {
    let e = o * C * I + c * I + i;
    let gv = f32(g[e]);
    sw += gv * (f32(x[e]) - mean[r]) * rstd[r];
    sb += gv;
    i++;
    if (i == I) { i = 0u; o++; }
  }
  dw[t] = sw;
  db[t] = sb;
}
