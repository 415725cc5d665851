/**
 * Random-access byte sources for the safetensors reader: a file read range by range with
 * seek + read (so a multi-gigabyte checkpoint is never read whole), or bytes already in memory.
 * Tests wrap a source to count or fail reads.
 *
 * @module
 */

/** Random-access bytes behind a reader: a file on disk, or memory. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Reads a byte range; a range past the end is a RangeError.
   *
   * @param offset First byte.
   * @param length Number of bytes.
   * @returns Exactly those bytes, in a fresh buffer starting at byte 0 of its ArrayBuffer.
   */
  read(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>>;
  /** Releases the source. */
  close(): void;
}

/**
 * Opens a file as a {@link ByteSource} that reads byte ranges with seek + read.
 *
 * @param path The file.
 * @returns The source; close it when done.
 * @example
 * ```ts
 * const src = await openFileSource("model.safetensors");
 * const lengthBytes = await src.read(0, 8);
 * src.close();
 * ```
 */
export async function openFileSource(path: string): Promise<ByteSource> {
  const file = await Deno.open(path, { read: true });
  let size: number;
  try {
    size = (await file.stat()).size;
  } catch (err) {
    file.close();
    throw err;
  }
  // Reads share one file position, so they run one after another.
  let queue: Promise<unknown> = Promise.resolve();
  const readAt = async (offset: number, length: number) => {
    const buf = new Uint8Array(length);
    await file.seek(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < length) {
      const n = await file.read(buf.subarray(done));
      if (n === null) {
        throw new RangeError(
          `Cannot read "${path}": the file ended at byte ${offset + done} while reading ` +
            `bytes ${offset}..${offset + length} (was it truncated while open?)`,
        );
      }
      done += n;
    }
    return buf;
  };
  return {
    size,
    read(offset, length) {
      const result = queue.then(() => readAt(offset, length));
      queue = result.catch(() => {});
      return result;
    },
    close() {
      file.close();
    },
  };
}

/**
 * Wraps bytes in memory as a {@link ByteSource}.
 *
 * @param bytes The whole file.
 * @returns The source (reads return copies).
 * @example
 * ```ts
 * const src = memorySource(new Uint8Array(16));
 * src.size; // 16
 * ```
 */
export function memorySource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read(offset, length) {
      if (offset + length > bytes.length) {
        return Promise.reject(
          new RangeError(`Cannot read bytes ${offset}..${offset + length} of ${bytes.length}`),
        );
      }
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
    close() {},
  };
}
