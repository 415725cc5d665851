/**
 * A deadline that ends the process even when its main thread is blocked (a synchronous GPU
 * or MPI wait): a worker thread holds the timer and kills the process (SIGKILL) when it
 * passes. A data-parallel rank arms one when a stop signal arrives, so a rank that cannot
 * stop with the others exits after the grace time instead of waiting for the collectives'
 * deadline (`train.distributed.timeout_s`); an unref'd timer on the main event loop would
 * never fire while that loop is blocked.
 *
 * @module
 */

/** An armed deadline. */
export interface StopDeadline {
  /** Disarms it (the run stopped in time). */
  cancel(): void;
}

/**
 * Arms a deadline.
 *
 * @param seconds Grace time.
 * @param message Printed to stderr when the deadline passes, before the process is killed.
 * @returns The deadline, to cancel when the run ends in time.
 */
export function armStopDeadline(seconds: number, message: string): StopDeadline {
  const worker = new Worker(new URL("./stop_deadline_worker.ts", import.meta.url).href, {
    type: "module",
  });
  worker.postMessage({ ms: seconds * 1000, message });
  return { cancel: () => worker.terminate() };
}
