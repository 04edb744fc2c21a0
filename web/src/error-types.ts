/**
 * An error whose message is already a sentence for the renter (the page's own checks). Anything
 * else reaching the status line goes through `explain` (errors.ts), so no library's wording shows.
 */
export class Sentence extends Error {
  override readonly name = 'Sentence';
}

/** An answer the node refused, with its stable code (API.md "Errors"). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}
