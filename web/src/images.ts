/**
 * The image the page selects when it loads: the CLI's and the agents' default (DEFAULT_IMAGE in
 * src/core/lease-request.ts, kept equal by test/unit/web/images.test.ts), so that a lease rented
 * without choosing is the same wherever it is rented from.
 */
export const DEFAULT_IMAGE = 'busybox';

/** The default when the node offers it, else the node's first image (none: undefined). */
export function defaultImage(images: readonly string[]): string | undefined {
  return images.includes(DEFAULT_IMAGE) ? DEFAULT_IMAGE : images[0];
}
