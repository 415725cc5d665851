/**
 * Shapes in messages.
 *
 * @module
 */

/**
 * Formats a shape for messages: `[2, 3]`.
 *
 * @param shape Dimensions.
 * @returns The shape as text.
 */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
