/**
 * The system's MPI library through FFI: found as `mpicc --showme:libdirs` / `pkg-config`
 * would find it (or at a path the user gives), loaded with `RTLD_GLOBAL` (OpenMPI loads its
 * transport plugins with `dlopen`, and they link back to libmpi's symbols), and bound with the
 * handle ABI of its implementation: OpenMPI's handles are pointers to global objects
 * (`&ompi_mpi_comm_world`), MPICH's are 32-bit integers with fixed values.
 *
 * @module
 */

/** The MPI implementations ps3 binds. */
export type MpiFlavor = "openmpi" | "mpich";

/** A handle as the FFI passes it: a pointer (OpenMPI) or an int (MPICH). */
export type MpiHandle = Deno.PointerValue | number;

/** The handles and constants of one MPI implementation. */
export interface MpiConstants {
  /** MPI_COMM_WORLD. */
  commWorld: MpiHandle;
  /** MPI_FLOAT. */
  float: MpiHandle;
  /** MPI_DOUBLE. */
  double: MpiHandle;
  /** MPI_INT. */
  int: MpiHandle;
  /** MPI_BYTE. */
  byte: MpiHandle;
  /** MPI_SUM. */
  sum: MpiHandle;
  /** MPI_MAX. */
  max: MpiHandle;
  /** MPI_IN_PLACE. */
  inPlace: Deno.PointerValue;
}

/** MPI_THREAD_SERIALIZED (the same value in both implementations). */
export const MPI_THREAD_SERIALIZED = 2;

function symbols(handle: "pointer" | "i32") {
  const h = handle;
  return {
    MPI_Initialized: { parameters: ["buffer"], result: "i32" },
    MPI_Init_thread: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
    MPI_Finalize: { parameters: [], result: "i32" },
    MPI_Comm_rank: { parameters: [h, "buffer"], result: "i32" },
    MPI_Comm_size: { parameters: [h, "buffer"], result: "i32" },
    MPI_Abort: { parameters: [h, "i32"], result: "i32" },
    MPI_Barrier: { parameters: [h], result: "i32", nonblocking: true },
    MPI_Allreduce: {
      parameters: ["pointer", "buffer", "i32", h, h, h],
      result: "i32",
      nonblocking: true,
    },
    MPI_Allgather: {
      parameters: ["buffer", "i32", h, "buffer", "i32", h, h],
      result: "i32",
      nonblocking: true,
    },
    MPI_Bcast: { parameters: ["buffer", "i32", h, "i32", h], result: "i32", nonblocking: true },
    MPI_Error_string: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  } as const;
}

/** The bound functions (OpenMPI's pointer handles or MPICH's int handles). */
export type MpiSymbols = Deno.DynamicLibrary<ReturnType<typeof symbols>>["symbols"];

/** A loaded MPI library. */
export interface MpiLibrary {
  /** Which implementation. */
  flavor: MpiFlavor;
  /** The file loaded. */
  path: string;
  /** The functions. */
  fn: MpiSymbols;
  /** Handles and constants. */
  c: MpiConstants;
}

const RTLD_NOW = 2, RTLD_GLOBAL = 0x100;
const ENC = new TextEncoder();
const cstr = (s: string) => ENC.encode(s + "\0");

/** libc's dlopen / dlsym / dlerror. */
function libdl() {
  return Deno.dlopen("libc.so.6", {
    dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
    dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
    dlerror: { parameters: [], result: "pointer" },
  });
}

/** Runs a command and returns its trimmed stdout, or null if it cannot run or fails. */
function probe(cmd: string, args: string[]): string | null {
  try {
    const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).outputSync();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/**
 * Where the MPI library may be, in the order tried: the user's path; else, the launcher's
 * implementation first (OpenMPI under `mpirun`, MPICH under hydra's `mpiexec`): the library
 * folders its compiler wrapper reports (`mpicc --showme:libdirs`, `mpicc.mpich -link_info`)
 * and `pkg-config`, then its soname as the dynamic loader resolves it.
 *
 * @param override `train.distributed.mpi_library`, if set.
 * @param prefer The implementation the launcher belongs to, if known.
 * @returns Candidate paths or sonames.
 */
export function mpiLibraryCandidates(
  override?: string | null,
  prefer?: MpiFlavor | null,
): string[] {
  if (override) return [override];
  const found = (flavor: MpiFlavor): string[] => {
    const dirs = new Set<string>();
    const wrappers = flavor === "openmpi"
      ? [["mpicc.openmpi", "--showme:libdirs"], ["mpicc", "--showme:libdirs"]]
      : [["mpicc.mpich", "-link_info"], ["mpicc", "-link_info"]];
    for (const [cmd, arg] of wrappers) {
      const out = probe(cmd!, [arg!]) ?? "";
      const list = flavor === "openmpi"
        ? out.split(/\s+/)
        : [...out.matchAll(/-L(\S+)/g)].map((m) => m[1]!);
      for (const d of list) if (d) dirs.add(d);
    }
    const d = probe("pkg-config", ["--variable=libdir", flavor === "openmpi" ? "ompi" : "mpich"]);
    if (d) dirs.add(d);
    const file = flavor === "openmpi" ? "libmpi.so" : "libmpich.so";
    const soname = flavor === "openmpi" ? "libmpi.so.40" : "libmpich.so.12";
    return [...[...dirs].map((dir) => `${dir}/${file}`), soname];
  };
  const order: MpiFlavor[] = prefer === "mpich" ? ["mpich", "openmpi"] : ["openmpi", "mpich"];
  return [...new Set([...order.flatMap(found), "libmpi.so"])];
}

/**
 * Loads the first MPI library of the candidates that the dynamic loader can open, globally.
 *
 * @param override `train.distributed.mpi_library`, if set.
 * @param prefer The implementation the launcher belongs to, if known.
 * @returns The bound library.
 */
export function loadMpi(override?: string | null, prefer?: MpiFlavor | null): MpiLibrary {
  const dl = libdl();
  try {
    const tried: string[] = [];
    for (const path of mpiLibraryCandidates(override, prefer)) {
      const h = dl.symbols.dlopen(cstr(path), RTLD_NOW | RTLD_GLOBAL);
      if (h === null) {
        const e = dl.symbols.dlerror();
        tried.push(e ? new Deno.UnsafePointerView(e).getCString() : path);
        continue;
      }
      const addr = (name: string) => dl.symbols.dlsym(h, cstr(name));
      const flavor: MpiFlavor = addr("ompi_mpi_comm_world") !== null ? "openmpi" : "mpich";
      const lib = Deno.dlopen(path, symbols(flavor === "openmpi" ? "pointer" : "i32"));
      const c = flavor === "openmpi" ? openMpiConstants(addr) : MPICH_CONSTANTS;
      return { flavor, path, fn: lib.symbols as MpiSymbols, c };
    }
    throw new Error(
      `Cannot load an MPI library (tried ${tried.join("; ")}). Install OpenMPI ` +
        "(openmpi-bin libopenmpi-dev) or MPICH, or set train.distributed.mpi_library",
    );
  } finally {
    dl.close();
  }
}

function openMpiConstants(addr: (name: string) => Deno.PointerValue): MpiConstants {
  const get = (name: string) => {
    const p = addr(name);
    if (p === null) throw new Error(`The OpenMPI library has no symbol "${name}"`);
    return p;
  };
  return {
    commWorld: get("ompi_mpi_comm_world"),
    float: get("ompi_mpi_float"),
    double: get("ompi_mpi_double"),
    int: get("ompi_mpi_int"),
    byte: get("ompi_mpi_byte"),
    sum: get("ompi_mpi_op_sum"),
    max: get("ompi_mpi_op_max"),
    inPlace: Deno.UnsafePointer.create(1n),
  };
}

/** MPICH's handle values (mpi.h of MPICH 3.x and 4.x, and its ABI-compatible derivatives). */
const MPICH_CONSTANTS: MpiConstants = {
  commWorld: 0x44000000,
  float: 0x4c00040a,
  double: 0x4c00080b,
  int: 0x4c000405,
  byte: 0x4c00010d,
  sum: 0x58000003,
  max: 0x58000001,
  inPlace: Deno.UnsafePointer.create(0xffffffffffffffffn),
};
