/**
 * Decode worker of the data loader (a Deno Worker). It loads the per-sample module and the
 * tokenizer once, then for each task reads the sample's image and JSON members from their
 * shards (by offset), runs `prepareSample` with the sample's own Rng state, and posts the
 * result back with its buffers transferred.
 *
 * Protocol (see {@link WorkerRequest} / {@link WorkerReply}): `init` answered by `ready` or
 * `init-failed`; each `task` answered by `done`, `skip` (bad input: a `SampleError`, or a
 * member that can no longer be read) or `fatal` (anything else: a bug, never swallowed).
 *
 * @module
 */

import { Rng, type RngState } from "../../util/rng.ts";
import type { MemberRef } from "./pairing.ts";
import type { PreparedSample, SampleInput, SampleOptions } from "./sample.ts";
import type { AnyTokenizer as Tokenizer } from "../formats/tokenizer.ts";

/** First message: what to load. */
export interface WorkerInit {
  /** Message type. */
  type: "init";
  /** URL of a module exporting `prepareSample` and `SampleError` (default `./sample.ts`). */
  sampleModule?: string | undefined;
  /** URL of a module exporting `loadTokenizer` (default `./tokenizer.ts`). */
  tokenizerModule?: string | undefined;
  /** Path of tokenizer.json. */
  tokenizer: string;
  /** Options handed to every `prepareSample` call. */
  options: SampleOptions;
}

/** A sample to prepare. */
export interface WorkerTask {
  /** Message type. */
  type: "task";
  /** Task id, echoed back. */
  id: number;
  /** Sample key. */
  key: string;
  /** Image member. */
  image: MemberRef;
  /** JSON member. */
  json: MemberRef;
  /** State of the sample's own Rng. */
  rng: RngState;
}

/** Messages to the worker. */
export type WorkerRequest = WorkerInit | WorkerTask;

/** Messages from the worker. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "init-failed"; message: string }
  | {
    type: "done";
    id: number;
    key: string;
    image: Float32Array;
    tokens: Int32Array;
    boxMap: Uint8Array;
    isGlobal: boolean;
    repairs: string[];
  }
  | { type: "skip"; id: number; kind: string; message: string }
  | { type: "fatal"; id: number; message: string; stack: string };

/** What the worker needs from the per-sample module (`sample.ts`, or a stand-in in tests). */
interface SampleModule {
  prepareSample(
    input: SampleInput,
    tokenizer: Tokenizer,
    options: SampleOptions,
    rng: Rng,
  ): Omit<PreparedSample, "repairs"> & { repairs?: readonly string[] | undefined };
  SampleError: abstract new (...args: never[]) => Error & { kind: string };
}

/** What the worker needs from the tokenizer module. */
interface TokenizerModule {
  loadTokenizer(path: string): Promise<Tokenizer>;
}

/** A member that can no longer be read as the scan saw it: counted as bad input. */
class ReadProblem extends Error {
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(message);
    this.kind = kind;
  }
}

const files = new Map<string, Deno.FsFile>();
const MAX_OPEN = 16;

function readMember(ref: MemberRef): Uint8Array {
  let f = files.get(ref.shard);
  if (f) files.delete(ref.shard); // re-inserted below: most recently used last
  else {
    try {
      f = Deno.openSync(ref.shard, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
        throw new ReadProblem("shard-unreadable", `Cannot read shard "${ref.shard}": ${e.message}`);
      }
      throw e;
    }
    if (files.size >= MAX_OPEN) {
      const [oldest, file] = files.entries().next().value!;
      file.close();
      files.delete(oldest);
    }
  }
  files.set(ref.shard, f);
  const out = new Uint8Array(ref.size);
  f.seekSync(ref.offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < ref.size) {
    const n = f.readSync(out.subarray(got));
    if (n === null) {
      throw new ReadProblem(
        "tar-truncated",
        `Cannot read member "${ref.name}" of shard "${ref.shard}": the file ends at byte ` +
          `${ref.offset + got}, before its data does (was the shard changed?)`,
      );
    }
    got += n;
  }
  return out;
}

let mod: SampleModule | undefined;
let tokenizer: Tokenizer;
let options: SampleOptions;

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(msg: WorkerReply, transfer?: Transferable[]): void;
};

scope.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const msg = e.data;
  if (msg.type === "init") {
    try {
      // Literal specifiers by default, so `deno compile` bundles them.
      mod = msg.sampleModule === undefined
        ? await import("./sample.ts")
        : (await import(msg.sampleModule)) as SampleModule;
      const tok: TokenizerModule = msg.tokenizerModule === undefined
        ? await import("../formats/tokenizer.ts")
        : (await import(msg.tokenizerModule)) as TokenizerModule;
      tokenizer = await tok.loadTokenizer(msg.tokenizer);
      options = msg.options;
      scope.postMessage({ type: "ready" });
    } catch (err) {
      scope.postMessage({
        type: "init-failed",
        message: err instanceof Error ? err.message : String(err),
      });
    }
    return;
  }
  const m = mod!;
  try {
    const imageBytes = readMember(msg.image);
    const jsonBytes = readMember(msg.json);
    const out = m.prepareSample(
      { key: msg.key, imageName: msg.image.name, imageBytes, jsonName: msg.json.name, jsonBytes },
      tokenizer,
      options,
      new Rng(msg.rng),
    );
    const reply: WorkerReply = {
      type: "done",
      id: msg.id,
      key: out.key,
      image: out.image,
      tokens: out.tokens,
      boxMap: out.boxMap,
      isGlobal: out.isGlobal,
      repairs: [...(out.repairs ?? [])],
    };
    const transfer = [out.image.buffer, out.tokens.buffer, out.boxMap.buffer].filter(
      (b, i, all): b is ArrayBuffer => b instanceof ArrayBuffer && all.indexOf(b) === i,
    );
    scope.postMessage(reply, transfer);
  } catch (err) {
    if (err instanceof m.SampleError || err instanceof ReadProblem) {
      scope.postMessage({ type: "skip", id: msg.id, kind: err.kind, message: err.message });
    } else {
      const error = err instanceof Error ? err : new Error(String(err));
      scope.postMessage({
        type: "fatal",
        id: msg.id,
        message: `Preparing sample "${msg.key}" failed: ${error.message}`,
        stack: error.stack ?? "",
      });
    }
  }
};
