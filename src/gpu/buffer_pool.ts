/**
 * A pool of storage buffers keyed by rounded size, with byte counters.
 *
 * Tensors take their memory from here and give it back on dispose; a training step that
 * disposes what it creates therefore reuses the same buffers every step and its memory stays
 * flat. Sizes are rounded up to one of four steps per power of two (at most 25% slack).
 *
 * Reuse is deterministic: of a size class's free buffers, `acquire` hands out the one created
 * first. A step that acquires and releases in the same order as the previous one, from the same
 * free buffers, therefore gets the same buffer for every tensor, and the runtime's bind groups
 * (keyed by buffer) are found again. (A stack would not do: releasing in acquisition order
 * reverses the stack, so each step would permute the buffers of the step before.)
 *
 * @module
 */

/** Byte counters of a {@linkcode BufferPool}. */
export interface PoolStats {
  /** Bytes of every buffer (and texture) the pool holds, in use or free. */
  allocatedBytes: number;
  /** Bytes of buffers handed out and not yet released. */
  inUseBytes: number;
  /** Highest `inUseBytes` since creation or the last {@linkcode BufferPool.resetPeak}. */
  peakInUseBytes: number;
  /** Highest `allocatedBytes` since creation or the last {@linkcode BufferPool.resetPeak}. */
  peakAllocatedBytes: number;
  /** Number of buffers (and textures) handed out and not yet released. */
  liveBuffers: number;
  /** Largest size asked of {@linkcode BufferPool.acquire} (before bucket rounding) since
   * creation or the last {@linkcode BufferPool.resetPeak}. */
  largestRequestBytes: number;
}

/** Usage flags of every pooled tensor buffer. */
export const TENSOR_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/**
 * Rounds a byte size up to its pool bucket: a multiple of 256 with at most four buckets per
 * power of two.
 *
 * @param bytes Requested size in bytes.
 * @returns The bucket size in bytes.
 * @example
 * ```ts
 * bucketSize(1000); // 1024
 * bucketSize(1300); // 1536
 * ```
 */
export function bucketSize(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  const top = 2 ** Math.floor(Math.log2(b));
  if (top === b) return b;
  const step = Math.max(256, top / 4);
  return Math.ceil(b / step) * step;
}

/**
 * The largest buffer a pool hands out on a device: its `maxBufferSize` rounded down to 256
 * bytes (a request above a bucket's top but under this gets a buffer of exactly this size).
 *
 * @param maxBufferBytes The device's largest buffer.
 * @returns Bytes.
 */
export function poolMaxBytes(maxBufferBytes: number): number {
  return Math.floor(maxBufferBytes / 256) * 256;
}

/**
 * Usage flags of every pooled texture: sampled by one kernel, written as storage by another,
 * and copied out (tests read them back).
 */
export const TEXTURE_USAGE = GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING |
  GPUTextureUsage.COPY_SRC;

/** Bytes per texel of the pooled textures (rgba32float). */
export const TEXEL_BYTES = 16;

/**
 * Hands out GPU buffers of bucketed sizes, and rgba32float textures of exact sizes (matmul
 * operands on CPU adapters), and takes them back for reuse; both count in the same bytes.
 */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #maxBytes: number;
  /** Free buffers per bucket size, in descending creation order (the oldest last). */
  readonly #free = new Map<number, GPUBuffer[]>();
  /** Free textures per "width x height", in descending creation order (the oldest last). */
  readonly #freeTextures = new Map<string, GPUTexture[]>();
  /** Creation order of every buffer and texture the pool holds. */
  readonly #order = new Map<GPUBuffer | GPUTexture, number>();
  #count = 0;
  #allocated = 0;
  #inUse = 0;
  #peak = 0;
  #peakAllocated = 0;
  #live = 0;
  #largest = 0;

  /**
   * Creates an empty pool.
   *
   * @param device The device buffers are created on.
   * @param maxBytes Largest buffer the device allows.
   */
  constructor(device: GPUDevice, maxBytes: number) {
    this.#device = device;
    this.#maxBytes = maxBytes;
  }

  /** Largest buffer the pool hands out ({@linkcode poolMaxBytes} of the device's limit). */
  get maxBytes(): number {
    return poolMaxBytes(this.#maxBytes);
  }

  /**
   * Returns a buffer of at least `bytes` bytes (contents undefined): the free buffer of its
   * bucket created first, or a new one.
   *
   * @param bytes Size needed.
   * @param label Debug label for a newly created buffer.
   * @returns A buffer whose `size` is the bucket size (capped at {@linkcode BufferPool.maxBytes}:
   *   a request near the device's limit gets a buffer of exactly the limit).
   */
  acquire(bytes: number, label = "tensor"): GPUBuffer {
    if (bytes > this.maxBytes) {
      throw new RangeError(
        `Cannot allocate a buffer of ${fmtBytes(bytes)}: the device allows at most ` +
          fmtBytes(this.#maxBytes),
      );
    }
    const size = Math.min(bucketSize(bytes), this.maxBytes);
    if (bytes > this.#largest) this.#largest = bytes;
    let buf = this.#free.get(size)?.pop();
    if (!buf) {
      buf = this.#device.createBuffer({ size, usage: TENSOR_USAGE, label });
      this.#created(buf, size);
    }
    this.#handOut(size);
    return buf;
  }

  /**
   * Takes a buffer back. Work already recorded that reads it still runs first, because the
   * queue executes in order.
   *
   * @param buf A buffer from {@linkcode BufferPool.acquire}.
   */
  release(buf: GPUBuffer): void {
    const list = this.#free.get(buf.size);
    if (list) list.splice(this.#freeSlot(list, this.#order.get(buf)!), 0, buf);
    else this.#free.set(buf.size, [buf]);
    this.#inUse -= buf.size;
    this.#live--;
  }

  /**
   * Returns an rgba32float texture of exactly `width` x `height` texels (contents undefined):
   * the free one of that size created first, or a new one.
   *
   * @param width Texels per row.
   * @param height Rows.
   * @param label Debug label for a newly created texture.
   * @returns The texture (usage {@linkcode TEXTURE_USAGE}).
   */
  acquireTexture(width: number, height: number, label = "texture"): GPUTexture {
    const bytes = width * height * TEXEL_BYTES;
    if (bytes > this.#largest) this.#largest = bytes;
    let tex = this.#freeTextures.get(`${width}x${height}`)?.pop();
    if (!tex) {
      tex = this.#device.createTexture({
        size: [width, height],
        format: "rgba32float",
        usage: TEXTURE_USAGE,
        label,
      });
      this.#created(tex, bytes);
    }
    this.#handOut(bytes);
    return tex;
  }

  /** Counts a new buffer or texture: its creation order and its bytes. */
  #created(resource: GPUBuffer | GPUTexture, bytes: number): void {
    this.#order.set(resource, this.#count++);
    this.#allocated += bytes;
    if (this.#allocated > this.#peakAllocated) this.#peakAllocated = this.#allocated;
  }

  /** Counts a buffer or texture handed out. */
  #handOut(bytes: number): void {
    this.#inUse += bytes;
    this.#live++;
    if (this.#inUse > this.#peak) this.#peak = this.#inUse;
  }

  /**
   * Takes a texture back (recorded work that reads it still runs first).
   *
   * @param tex A texture from {@linkcode BufferPool.acquireTexture}.
   */
  releaseTexture(tex: GPUTexture): void {
    const key = `${tex.width}x${tex.height}`;
    const list = this.#freeTextures.get(key);
    if (list) list.splice(this.#freeSlot(list, this.#order.get(tex)!), 0, tex);
    else this.#freeTextures.set(key, [tex]);
    this.#inUse -= tex.width * tex.height * TEXEL_BYTES;
    this.#live--;
  }

  /** Destroys every free buffer and texture, returning their memory to the device. */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const b of list) {
        this.#allocated -= b.size;
        this.#order.delete(b);
        b.destroy();
      }
    }
    this.#free.clear();
    for (const list of this.#freeTextures.values()) {
      for (const t of list) {
        this.#allocated -= t.width * t.height * TEXEL_BYTES;
        this.#order.delete(t);
        t.destroy();
      }
    }
    this.#freeTextures.clear();
  }

  /** Where a resource of creation order `order` goes in a free list (descending order). */
  #freeSlot(list: readonly (GPUBuffer | GPUTexture)[], order: number): number {
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#order.get(list[mid]!)! > order) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Starts new peak measurements: in-use and allocated bytes from now, the largest request. */
  resetPeak(): void {
    this.#peak = this.#inUse;
    this.#peakAllocated = this.#allocated;
    this.#largest = 0;
  }

  /**
   * Reports the pool's memory use.
   *
   * @returns The current byte counters.
   */
  stats(): PoolStats {
    return {
      allocatedBytes: this.#allocated,
      inUseBytes: this.#inUse,
      peakInUseBytes: this.#peak,
      peakAllocatedBytes: this.#peakAllocated,
      liveBuffers: this.#live,
      largestRequestBytes: this.#largest,
    };
  }
}

/**
 * Formats a byte count for messages, e.g. "128.0 MiB".
 *
 * @param bytes A byte count.
 * @returns A human-readable size.
 */
export function fmtBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}
