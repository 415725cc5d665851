/**
 * Stop signals of a training run: SIGINT (Ctrl-C), SIGTERM (`timeout`, `docker stop`, batch
 * schedulers) and SIGHUP (a closed terminal) ask the run to finish its current step, write a
 * checkpoint and exit with the conventional code (128 + the signal number); a second signal
 * exits at once with that code.
 *
 * @module
 */

/** The signals a run stops on, with their numbers (Linux and macOS agree on these). */
export const STOP_SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

/** A stop signal's name. */
export type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * The exit code of a process stopped by a signal: 128 + its number (130 for SIGINT, 143 for
 * SIGTERM, 129 for SIGHUP).
 *
 * @param signal The signal.
 * @returns The exit code.
 */
export function signalExitCode(signal: StopSignal): number {
  return 128 + STOP_SIGNALS[signal];
}

/** Listens for stop signals while a run trains; `dispose()` restores the defaults. */
export class StopSignals {
  /** The first signal received, or null. */
  received: StopSignal | null = null;
  readonly #listeners: [StopSignal, () => void][] = [];

  /**
   * Starts listening.
   *
   * @param onFirst Called on the first signal (set the stop flag, log).
   * @example
   * ```ts
   * using signals = new StopSignals((s) => console.log(`${s}: stopping after this step`));
   * ```
   */
  constructor(onFirst: (signal: StopSignal) => void) {
    const names = Object.keys(STOP_SIGNALS) as StopSignal[];
    for (const name of names) {
      if (Deno.build.os === "windows" && name !== "SIGINT") continue;
      const listener = () => {
        if (this.received !== null) {
          console.error(`${name} again: exiting now without a checkpoint`);
          Deno.exit(signalExitCode(name));
        }
        this.received = name;
        onFirst(name);
      };
      Deno.addSignalListener(name, listener);
      this.#listeners.push([name, listener]);
    }
  }

  /** Stops listening (the default actions apply again). */
  dispose(): void {
    for (const [name, l] of this.#listeners.splice(0)) Deno.removeSignalListener(name, l);
  }

  /** Stops listening. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
