/**
 * The worker of {@linkcode armStopDeadline} (`stop_deadline.ts`): waits the given time on its
 * own thread, then prints the message and kills its process.
 *
 * @module
 */

/// <reference lib="deno.worker" />

self.onmessage = (e: MessageEvent<{ ms: number; message: string }>) => {
  setTimeout(() => {
    console.error(e.data.message);
    Deno.kill(Deno.pid, "SIGKILL");
  }, e.data.ms);
};
