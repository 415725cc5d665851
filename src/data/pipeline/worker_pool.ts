/**
 * The loader's decode workers: a fixed pool of module Workers running
 * `loader_worker.ts`, each task sent to the least busy one, each reply matched to its task.
 * A crashed worker fails every task in flight (and whatever the owner says through
 * `onCrash`); the pool never retries, so a crash is never hidden.
 *
 * @module
 */

import type { WorkerReply, WorkerRequest, WorkerTask } from "./loader_worker.ts";

/** The result of one sample's preparation in a worker. */
export type Outcome =
  | {
    ok: true;
    key: string;
    image: Float32Array;
    tokens: Int32Array;
    boxMap: Uint8Array;
    isGlobal: boolean;
    repairs: string[];
  }
  | { ok: false; kind: string; message: string }
  | { ok: false; fatal: Error };

/** One sample's preparation request (without the pool's message type and task id). */
export type SampleTask = Omit<WorkerTask, "type" | "id">;

interface WorkerHandle {
  worker: Worker;
  pending: number;
}

/** A pool of decode workers. */
export class WorkerPool {
  readonly #workers: WorkerHandle[];
  readonly #replies = new Map<number, (o: Outcome) => void>();
  #taskId = 0;
  #closed = false;

  private constructor(workers: WorkerHandle[], onCrash: (e: Error) => void) {
    this.#workers = workers;
    for (const w of workers) {
      w.worker.onmessage = (e: MessageEvent<WorkerReply>) => this.#onReply(w, e.data);
      w.worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        const err = new Error(`A decode worker crashed: ${e.message}`);
        this.failAll(err);
        onCrash(err);
      };
    }
  }

  /**
   * Starts `count` workers and waits until each has loaded its modules.
   *
   * @param count Number of workers (>= 1).
   * @param init The initialisation message (sample options, tokenizer).
   * @param onCrash Called when a worker crashes after start-up.
   * @returns The pool.
   */
  static async start(
    count: number,
    init: WorkerRequest,
    onCrash: (e: Error) => void,
  ): Promise<WorkerPool> {
    const workers: WorkerHandle[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const worker = new Worker(new URL("./loader_worker.ts", import.meta.url), {
          type: "module",
        });
        workers.push({ worker, pending: 0 });
      }
      await Promise.all(workers.map((w) => startWorker(w.worker, init)));
    } catch (e) {
      for (const w of workers) w.worker.terminate();
      throw e;
    }
    return new WorkerPool(workers, onCrash);
  }

  /**
   * Sends one task to the least busy worker.
   *
   * @param task The sample and its generator state.
   * @returns Its outcome (a `fatal` outcome if the pool fails or closes first).
   */
  run(task: SampleTask): Promise<Outcome> {
    const id = this.#taskId++;
    let best = this.#workers[0]!;
    for (const w of this.#workers) if (w.pending < best.pending) best = w;
    best.pending++;
    return new Promise<Outcome>((resolve) => {
      this.#replies.set(id, resolve);
      best.worker.postMessage({ type: "task", id, ...task } satisfies WorkerRequest);
    });
  }

  /**
   * Fails every task in flight with an error.
   *
   * @param e The error their outcomes carry.
   */
  failAll(e: Error): void {
    for (const resolve of this.#replies.values()) resolve({ ok: false, fatal: e });
    this.#replies.clear();
  }

  /** Terminates the workers; tasks in flight fail with "closed". */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.worker.terminate();
    this.failAll(new Error("The data loader was closed"));
  }

  #onReply(w: WorkerHandle, msg: WorkerReply): void {
    if (msg.type === "ready" || msg.type === "init-failed") return;
    w.pending--;
    const resolve = this.#replies.get(msg.id);
    if (!resolve) return;
    this.#replies.delete(msg.id);
    if (msg.type === "done") {
      const { key, image, tokens, boxMap, isGlobal, repairs } = msg;
      resolve({ ok: true, key, image, tokens, boxMap, isGlobal, repairs });
    } else if (msg.type === "skip") resolve({ ok: false, kind: msg.kind, message: msg.message });
    else {
      const err = new Error(msg.message);
      err.stack = `${msg.message}\n${msg.stack}`;
      resolve({ ok: false, fatal: err });
    }
  }
}

function startWorker(worker: Worker, init: WorkerRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      if (e.data.type === "ready") resolve();
      else if (e.data.type === "init-failed") {
        reject(new Error(`Cannot start a decode worker: ${e.data.message}`));
      }
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      reject(new Error(`Cannot start a decode worker: ${e.message}`));
    };
    worker.postMessage(init);
  });
}
