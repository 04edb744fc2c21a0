/**
 * An error whose message is already a sentence for the renter (the page's own checks). Anything
 * else reaching the status line goes through `explain` (errors.ts), so no library's wording shows.
 */
export class Sentence extends Error {
  override readonly name = 'Sentence';
}
