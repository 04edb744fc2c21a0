import { z } from 'zod';
import type { BlindedMessage, BlindSignature, Proof } from '../../mint/types.js';

/**
 * A small, bounded HTTP client for another Cashu mint (NUT-01/02 keys, NUT-03 swap, NUT-09
 * restore). Everything the mint answers is untrusted: each call has a deadline, a cap on the
 * answer's size and a schema; anything else is `MintUnavailable`, never a crash.
 */
export interface MintClientOptions {
  /** Base URL of the mint, without a trailing slash (`.../v1/...` is appended). */
  url: string;
  fetch?: typeof fetch;
  /** Deadline of one HTTP exchange, default 5 s. */
  timeoutMs?: number;
  /** Largest answer read, default 1 MiB. */
  maxResponseBytes?: number;
}

/** The mint answered with a NUT error (`{"detail", "code"}`): it refused, nothing happened there. */
export class MintRefused extends Error {
  override name = 'MintRefused';
  constructor(
    readonly code: number,
    readonly detail: string,
  ) {
    super(`mint refused (${code}): ${detail}`);
  }
}

/** No usable answer: network error, timeout, 5xx, oversize or malformed answer. Outcome unknown. */
export class MintUnavailable extends Error {
  override name = 'MintUnavailable';
}

const hex = (n: number) => z.string().regex(new RegExp(`^[0-9a-fA-F]{${n}}$`));
const point = hex(66);
// Hex keyset ids of NUT-02 (v1: 16 chars, v2: 66); base64 ids of old mints are not taken.
const keysetId = z.string().regex(/^[0-9a-fA-F]{16}$|^[0-9a-fA-F]{66}$/);
const denomination = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const keysetsSchema = z.object({
  keysets: z
    .array(
      z.object({
        id: keysetId,
        unit: z.string().min(1).max(32),
        active: z.boolean(),
        input_fee_ppk: z.number().int().min(0).max(1_000_000).optional(),
      }),
    )
    .max(200),
});

const keysSchema = z.object({
  keysets: z
    .array(
      z.object({
        id: keysetId,
        unit: z.string().min(1).max(32),
        keys: z.record(z.string().regex(/^[1-9][0-9]{0,19}$/), point),
      }),
    )
    .max(200),
});

const signatureSchema = z.object({
  amount: denomination,
  id: keysetId,
  C_: point,
});

const swapSchema = z.object({ signatures: z.array(signatureSchema).max(10_000) });

const restoreSchema = z.object({
  outputs: z.array(z.object({ amount: denomination, id: keysetId, B_: point })).max(10_000),
  // NUT-09 answers `signatures`; older mints named them `promises`.
  signatures: z.array(signatureSchema).max(10_000).optional(),
  promises: z.array(signatureSchema).max(10_000).optional(),
});

const checkStateSchema = z.object({
  states: z.array(z.object({ Y: point, state: z.enum(['UNSPENT', 'PENDING', 'SPENT']) }).loose()).max(10_000),
});

/** NUT-06 info: only what the node reads (`nuts`), each NUT's settings an object. */
const infoSchema = z.object({
  nuts: z.record(z.string().max(8), z.object({ supported: z.unknown().optional() }).loose()).optional(),
});

const errorSchema = z.object({ code: z.number().int(), detail: z.string().max(2000).optional() });

export type KeysetsAnswer = z.infer<typeof keysetsSchema>['keysets'];
export type KeysAnswer = z.infer<typeof keysSchema>['keysets'];
export type SignatureAnswer = Pick<BlindSignature, 'amount' | 'id' | 'C_'>;

export class MintClient {
  readonly url: string;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(options: MintClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.fetchFn = options.fetch ?? fetch;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;
  }

  /** NUT-06: the mint's `nuts` (settings by NUT number; absent when the mint names none). */
  async info(): Promise<Record<string, { supported?: unknown }>> {
    return (await this.call('GET', '/v1/info', undefined, infoSchema)).nuts ?? {};
  }

  async keysets(): Promise<KeysetsAnswer> {
    return (await this.call('GET', '/v1/keysets', undefined, keysetsSchema)).keysets;
  }

  async keys(id: string): Promise<KeysAnswer> {
    return (await this.call('GET', `/v1/keys/${encodeURIComponent(id)}`, undefined, keysSchema)).keysets;
  }

  /** NUT-03: signatures in the order of `outputs`. */
  async swap(inputs: readonly Proof[], outputs: readonly BlindedMessage[]): Promise<SignatureAnswer[]> {
    const answer = await this.call('POST', '/v1/swap', { inputs, outputs }, swapSchema);
    if (answer.signatures.length !== outputs.length)
      throw new MintUnavailable('the mint answered a swap with the wrong number of signatures');
    return answer.signatures;
  }

  /** NUT-09: the signatures the mint already gave for any of `outputs`, keyed by B_ (lower-case). */
  async restore(outputs: readonly BlindedMessage[]): Promise<Map<string, SignatureAnswer>> {
    const answer = await this.call('POST', '/v1/restore', { outputs }, restoreSchema);
    const signatures = answer.signatures ?? answer.promises ?? [];
    if (signatures.length !== answer.outputs.length)
      throw new MintUnavailable('the mint answered a restore with unmatched outputs and signatures');
    const asked = new Set(outputs.map((o) => o.B_.toLowerCase()));
    const found = new Map<string, SignatureAnswer>();
    answer.outputs.forEach((o, i) => {
      const B_ = o.B_.toLowerCase();
      const signature = signatures[i];
      if (signature && asked.has(B_)) found.set(B_, signature);
    });
    return found;
  }

  /** NUT-07: the state of each proof, by Y (lower-case); a Y the mint left out is not in the map. */
  async checkState(Ys: readonly string[]): Promise<Map<string, 'UNSPENT' | 'PENDING' | 'SPENT'>> {
    const answer = await this.call('POST', '/v1/checkstate', { Ys }, checkStateSchema);
    return new Map(answer.states.map((s) => [s.Y.toLowerCase(), s.state]));
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
  ): Promise<T> {
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(`${this.url}${path}`, {
        method,
        headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
      text = await readCapped(res, this.maxResponseBytes);
    } catch (err) {
      // The cause may name the mint's address but never carries what was sent.
      throw new MintUnavailable(`${method} ${path} failed: ${(err as Error).name}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new MintUnavailable(`${method} ${path}: the answer (${res.status}) is not JSON`);
    }
    if (res.status >= 400 && res.status < 500) {
      const error = errorSchema.safeParse(json);
      if (error.success) throw new MintRefused(error.data.code, error.data.detail ?? '');
      throw new MintUnavailable(`${method} ${path}: ${res.status} without a NUT error`);
    }
    if (res.status !== 200) throw new MintUnavailable(`${method} ${path}: status ${res.status}`);
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new MintUnavailable(`${method} ${path}: malformed answer`);
    return parsed.data;
  }
}

/** Reads a body up to `max` bytes; cancels the stream and throws beyond. */
async function readCapped(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel();
    throw new RangeError('answer too large');
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new RangeError('answer too large');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
