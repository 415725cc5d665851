{{ENABLE}}
// Row gather out[p, :] = table[row(p), :] for the rows of one table window and one window
// of output rows (positions p0 .. p0+m-1; both bound in windows when larger than one storage
// binding), where
// row(p) = (p / perB) * rowStride + idx[p]: a shared table (rowStride 0) or a per-sample
// table [B, N, C] seen as [B*N, C] (rowStride N). The table may be bound in windows of
// whole rows (a table larger than one storage binding); each output element is written by
// exactly one dispatch: the one whose window holds its row, or the first window's dispatch
// (first = 1), which writes 0 where idx is outside [0, N). No out-of-bounds access.
// Shapes: table window [wrows, c] (rows row0 .. row0+wrows-1 of the table), idx [all
// positions] i32, out window [m, c] (positions p0 .. p0+m-1). Elements move as raw words of type T: u32 for 4-byte tables (f32, i32, u32),
// f16 for f16 activations.
// Params: m positions of the output window, perB positions per sample, c channels, n rows
// per sample (valid idx range), rowStride, row0, wrows, first, p0 (the window's first
// position).
// Dispatch: grid(m * c, 256) workgroups of 256 threads; thread t handles out[t / c, t % c].
// Bindings: 0 table (read), 1 idx (read), 2 out (write), 3 params.
@group(0) @binding(0) var<storage, read> table: array<{{T}}>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;
struct Params {
  m: u32, perB: u32, c: u32, n: u32, rowStride: u32, row0: u32, wrows: u32, first: u32,
  p0: u32,
}
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= params.m * params.c) { return; }
  let p = params.p0 + t / params.c;
  let ch = t % params.c;
  let id = idx[p];
  if (id < 0 || u32(id) >= params.n) {
    if (params.first == 1u) { out[t] = {{T}}(0); }
    return;
  }
  let row = (p / params.perB) * params.rowStride + u32(id);
  if (row < params.row0 || row - params.row0 >= params.wrows) { return; }
  out[t] = table[(row - params.row0) * params.c + ch];
}
