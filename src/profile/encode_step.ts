/**
 * `ps3 encode <image> --profile`: one unprofiled encode of the image (pipelines compiled,
 * buffers pooled), then the same encode profiled. Its host phases are the encoder's own
 * (decode, preprocess, model, pictures), laid end to end from its summary's timings.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import type { Ps3EncodeOptions, Ps3Encoder, Ps3Encoding } from "../encode/ps3_encoder.ts";
import { Profiler, type StepProfile } from "./profiler.ts";

/**
 * Encodes an image twice and profiles the second encode.
 *
 * @param encoder The loaded model.
 * @param image The image file's bytes.
 * @param options The encode's options.
 * @returns The profile and the profiled encode's result.
 * @example
 * ```ts
 * const { profile } = await profileEncode(encoder, await Deno.readFile("photo.jpg"));
 * ```
 */
export async function profileEncode(
  encoder: Ps3Encoder,
  image: Uint8Array,
  options: Ps3EncodeOptions = {},
): Promise<{ profile: StepProfile; encoding: Ps3Encoding }> {
  const rt = gpu();
  await encoder.encode(image, options);
  const profiler = new Profiler(rt);
  profiler.start();
  let encoding: Ps3Encoding;
  try {
    encoding = await profiler.phaseAsync("encode", () => encoder.encode(image, options));
  } catch (e) {
    rt.observe(null);
    throw e;
  }
  const profile = await profiler.stop(
    `encode of ${options.file ?? "an image"} with ${encoder.model.config.name}`,
  );
  // The encoder's own split of its time, as host phases inside "encode".
  let at = profile.phases[0]!.startMs;
  const ms = encoding.summary.ms;
  for (
    const [name, d] of [["decode", ms.decode], ["preprocess", ms.preprocess], ["model", ms.model], [
      "pictures",
      ms.draw,
    ]] as const
  ) {
    profile.phases.push({ name, startMs: at, ms: d, kind: "work" });
    at += d;
  }
  return { profile, encoding };
}
