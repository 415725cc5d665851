/**
 * The error every per-sample stage throws for bad input (an undecodable image, a malformed
 * annotation, an unusable caption), with a `kind` the loader counts skips by. Kept apart from
 * `sample.ts` so the image, annotation and tokenizer modules can throw it without an import
 * cycle; `sample.ts` re-exports it.
 *
 * @module
 */

/**
 * Why a sample was rejected. Every kind is a property of the sample's bytes alone (never of
 * the random draw), so a dataset check reports the same problems a training run skips.
 *
 * - `image-corrupt`: the image bytes do not decode (bad header, bad entropy data, CRC error).
 * - `image-truncated`: the image data ends early (JPEG without its end-of-image marker, PNG
 *   without IEND, WebP shorter than its RIFF size).
 * - `image-unsupported`: a format or mode this decoder does not handle (GIF, BMP, TIFF, CMYK
 *   JPEG, animated WebP, zero-sized images).
 * - `image-too-large`: the header declares more pixels than `maxPixels`; nothing is decoded.
 * - `json-invalid`: the annotation is not UTF-8 JSON of the expected shape (wrong types).
 * - `json-missing-field`: no caption field at all, or `text` without `box`.
 * - `box-invalid`: a box is not four finite numbers, or is inverted or empty (x2 <= x1 or
 *   y2 <= y1).
 * - `box-out-of-range`: a box does not overlap the image at all.
 * - `box-count-mismatch`: `text` and `box` have different lengths.
 * - `caption-empty`: every caption is empty after the reference's text cleaning.
 * - `caption-error-marker`: every caption is the captioner's error marker
 *   `"[Error] No caption found!"` (or empty).
 */
export type SampleErrorKind =
  | "image-corrupt"
  | "image-truncated"
  | "image-unsupported"
  | "image-too-large"
  | "json-invalid"
  | "json-missing-field"
  | "box-invalid"
  | "box-out-of-range"
  | "box-count-mismatch"
  | "caption-empty"
  | "caption-error-marker";

/** Every {@link SampleErrorKind}, for reports that list zero counts too. */
export const SAMPLE_ERROR_KINDS: readonly SampleErrorKind[] = [
  "image-corrupt",
  "image-truncated",
  "image-unsupported",
  "image-too-large",
  "json-invalid",
  "json-missing-field",
  "box-invalid",
  "box-out-of-range",
  "box-count-mismatch",
  "caption-empty",
  "caption-error-marker",
];

/** Where a problem was found. */
export interface SampleWhere {
  /** The sample key (webdataset `__key__`); empty when unknown. */
  key: string;
  /** The file inside the sample (`00000001.jpg`). */
  file: string;
}

/**
 * A sample that cannot be used, with the reason. The message reads
 * `Cannot use sample "00000001" (00000001.jpg): <reason>`.
 *
 * @example
 * ```ts
 * const e = new SampleError("box-invalid", "box 2 is inverted", { key: "k", file: "k.json" });
 * e.kind; // "box-invalid"
 * ```
 */
export class SampleError extends Error {
  /** Why, as a countable kind. */
  readonly kind: SampleErrorKind;
  /** The sample key. */
  readonly key: string;
  /** The file inside the sample. */
  readonly file: string;
  /** The reason alone, without the sample and file. */
  readonly reason: string;

  /**
   * Creates the error with the message `Cannot use sample "key" (file): reason`.
   *
   * @param kind Why, as a countable kind.
   * @param reason What is wrong, in sentence case without a final period.
   * @param where The sample key and file name.
   */
  constructor(kind: SampleErrorKind, reason: string, where: SampleWhere) {
    const who = where.key ? `sample "${where.key}" (${where.file})` : `"${where.file}"`;
    super(`Cannot use ${who}: ${reason}`);
    this.name = "SampleError";
    this.kind = kind;
    this.key = where.key;
    this.file = where.file;
    this.reason = reason;
  }
}
