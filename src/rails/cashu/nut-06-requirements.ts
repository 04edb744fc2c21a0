import { MintClient, MintRefused } from './mint-client.js';

/**
 * What the node relies on at a trusted mint, by NUT (read from its NUT-06 `/v1/info`): NUT-07
 * checkstate tells whether a swap whose answer got lost went through; NUT-09 restore gets its
 * signatures back (a replay, a refund after a restart). A mint without them could make a paid
 * request end with neither a lease nor the money back.
 */
export const REQUIRED_NUTS: ReadonlyArray<{ nut: string; name: string }> = [
  { nut: '7', name: 'NUT-07 (checkstate)' },
  { nut: '9', name: 'NUT-09 (restore)' },
];

/**
 * Asks every trusted mint for its NUT-06 info and throws one Error naming each mint that cannot be
 * asked or lacks a required NUT, and which ones — so the node refuses to start rather than take
 * payments it could not safely redeem. Bounded: one GET per mint, with the client's deadline.
 */
export async function requireTrustedMintNuts(
  urls: readonly string[],
  options: { fetch?: typeof fetch; timeoutMs?: number } = {},
): Promise<void> {
  const problems = await Promise.all(
    urls.map(async (url) => {
      const client = new MintClient({ url, fetch: options.fetch, timeoutMs: options.timeoutMs });
      let nuts: Record<string, { supported?: unknown }>;
      try {
        nuts = await client.info();
      } catch (err) {
        const why = err instanceof MintRefused ? `it refused (${err.code})` : (err as Error).message;
        return `trusted mint ${client.url}: its /v1/info could not be read (${why})`;
      }
      const missing = REQUIRED_NUTS.filter(({ nut }) => nuts[nut]?.supported !== true).map((n) => n.name);
      if (missing.length === 0) return undefined;
      return `trusted mint ${client.url} does not support ${missing.join(' and ')}, which this node relies on`;
    }),
  );
  const found = problems.filter((p): p is string => p !== undefined);
  if (found.length > 0) {
    throw new Error(`${found.join('; ')}. Remove it from trustedMints or use a mint that supports them.`);
  }
}
