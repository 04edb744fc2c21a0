/** The node's HTTP API (API.md), as the page uses it: same origin, JSON, checked at the boundary. */

import { ApiError, Sentence } from './error-types.js';

export { ApiError };

export interface OfferInfo {
  id: string;
  vcpu: number;
  memory_mib: number;
  disk_mib: number;
  /** 'egress': the sandbox reaches the internet (capped at bandwidth_mbit); 'none': loopback only. */
  network: 'none' | 'egress';
  bandwidth_mbit?: number;
  price: { amount_per_hour: number; unit: string };
  min_seconds: number;
  max_seconds: number;
  available: number;
}

export interface Offers {
  offers: OfferInfo[];
  images: string[];
  /** What the node says of each image (`image_details`): a line for the image picker. */
  imageLabels: Record<string, string>;
  mint: string;
  unit: string;
}

export interface Lease {
  id: string;
  state: string;
  offer: string;
  image: string;
  expires_at: string;
  /** Only in the answer to the paid creation. */
  token?: string;
  change?: string | null;
  refund?: string | null;
  refunded?: number;
  /** One refund token per mint the lease was paid at (a stop of a lease extended elsewhere). */
  refunds?: MintRefund[];
  paid?: number;
  /** Port inside the sandbox -> its public URL on the node (a page, an API, a WebSocket). */
  ports?: Record<string, string>;
}

/** The part of a refund one mint pays back. */
export interface MintRefund {
  mint: string;
  token: string;
  amount: number;
}

async function call(path: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(path, {
    ...init,
    credentials: 'omit',
    cache: 'no-store',
    headers: { accept: 'application/json', ...(init.headers ?? {}) },
  });
  const text = await res.text();
  let body: unknown = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, 'invalid_answer', `the node answered ${res.status} without JSON`);
  }
  if (!res.ok) {
    const e = isObject(body) ? body : {};
    const code = typeof e.error === 'string' ? e.error : 'http_error';
    const message = typeof e.message === 'string' ? e.message : `HTTP ${res.status}`;
    throw new ApiError(res.status, code, message);
  }
  return body;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An answer the page cannot use: said as such, never as the check that failed. */
function bad(what: string): Sentence {
  return new Sentence(
    `The node sent an answer this page does not understand (its ${what}); reload the page.`,
  );
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(what);
  return v;
}

/** A fractional figure (an offer's vcpu may be 0.25). */
function fraction(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(what);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > 100_000) throw bad(what);
  return v;
}

export async function getOffers(): Promise<Offers> {
  const body = await call('/v1/offers');
  if (!isObject(body) || !Array.isArray(body.offers)) throw bad('offers');
  const offers = body.offers.slice(0, 50).map((o): OfferInfo => {
    if (!isObject(o) || !isObject(o.price)) throw bad('offer');
    return {
      id: str(o.id, 'offer id'),
      vcpu: fraction(o.vcpu, 'vcpu'),
      memory_mib: num(o.memory_mib, 'memory'),
      disk_mib: num(o.disk_mib, 'disk'),
      network: o.network === 'egress' ? 'egress' : 'none',
      ...(o.bandwidth_mbit === undefined ? {} : { bandwidth_mbit: num(o.bandwidth_mbit, 'bandwidth') }),
      price: {
        amount_per_hour: num(o.price.amount_per_hour, 'price'),
        unit: str(o.price.unit, 'unit'),
      },
      min_seconds: num(o.min_seconds, 'min_seconds'),
      max_seconds: num(o.max_seconds, 'max_seconds'),
      available: num(o.available, 'available'),
    };
  });
  const images = Array.isArray(body.images) ? body.images.slice(0, 50).map((i) => str(i, 'image')) : [];
  const payment = isObject(body.payment) && isObject(body.payment.cashu) ? body.payment.cashu : {};
  const mints = Array.isArray(payment.mints) ? payment.mints : [];
  const imageLabels: Record<string, string> = {};
  for (const d of Array.isArray(body.image_details) ? body.image_details.slice(0, 50) : []) {
    if (!isObject(d) || typeof d.name !== 'string' || !images.includes(d.name)) continue;
    const about = typeof d.description === 'string' ? d.description.slice(0, 120) : '';
    const size = typeof d.size_mib === 'number' && d.size_mib > 0 ? ` (${Math.round(d.size_mib)} MiB)` : '';
    imageLabels[d.name] = about ? `${d.name} — ${about}${size}` : `${d.name}${size}`;
  }
  return {
    offers,
    images,
    imageLabels,
    mint: str(mints[0], 'mint'),
    unit: str(payment.unit ?? 'sat', 'unit'),
  };
}

export async function getQuote(offer: string, seconds: number): Promise<number> {
  const q = new URLSearchParams({ offer, seconds: String(seconds) });
  const body = await call(`/v1/quote?${q}`);
  if (!isObject(body)) throw bad('quote');
  return num(body.amount, 'quote');
}

/**
 * The test Lightning backend the node's mint runs, if any (`lightning` in its /v1/info, added by
 * alacarte): its invoices pay themselves and its ecash is worth nothing. Asked on this origin,
 * at the mint's path, as the wallet does.
 */
export async function testBackendOf(mintUrl: string): Promise<string | undefined> {
  const path = new URL(mintUrl).pathname.replace(/\/+$/, '');
  const body = await call(`${path}/v1/info`);
  if (!isObject(body) || !isObject(body.lightning) || body.lightning.test !== true) return undefined;
  return typeof body.lightning.backend === 'string' ? body.lightning.backend.slice(0, 32) : 'test';
}

function toLease(body: unknown): Lease {
  if (!isObject(body)) throw bad('lease');
  const opt = (v: unknown, what: string) => (v === undefined || v === null ? v : str(v, what));
  return {
    id: str(body.id, 'lease id'),
    state: str(body.state, 'state'),
    offer: str(body.offer, 'offer'),
    image: str(body.image, 'image'),
    expires_at: str(body.expires_at, 'expires_at'),
    token: opt(body.token, 'token') ?? undefined,
    change: opt(body.change, 'change'),
    refund: opt(body.refund, 'refund'),
    refunded: typeof body.refunded === 'number' ? num(body.refunded, 'refunded') : undefined,
    refunds: Array.isArray(body.refunds) ? body.refunds.flatMap(toMintRefund) : undefined,
    paid: typeof body.paid === 'number' ? num(body.paid, 'paid') : undefined,
    ports: toPorts(body.ports),
  };
}

/** The `ports` map, checked: port numbers to http(s) URLs only (they become links on the page). */
function toPorts(value: unknown): Record<string, string> | undefined {
  if (!isObject(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [port, url] of Object.entries(value)) {
    if (/^[0-9]{1,5}$/.test(port) && typeof url === 'string' && /^https?:\/\//.test(url)) out[port] = url;
  }
  return out;
}

/** A `refunds` entry with a token, checked; entries without one (nothing left after fees) drop out. */
function toMintRefund(entry: unknown): MintRefund[] {
  if (!isObject(entry) || entry.token === null || entry.token === undefined) return [];
  return [
    {
      mint: str(entry.mint, 'refund mint'),
      token: str(entry.token, 'refund'),
      amount: num(entry.amount, 'refund'),
    },
  ];
}

const json = { 'content-type': 'application/json' };

export async function createLease(
  request: { offer: string; seconds: number; image: string; ports?: number[] },
  token: string,
): Promise<Lease> {
  const body = await call('/v1/leases', {
    method: 'POST',
    headers: { ...json, 'x-cashu': token },
    body: JSON.stringify(request),
  });
  return toLease(body);
}

export async function getLease(id: string, bearer: string): Promise<Lease> {
  return toLease(await call(`/v1/leases/${encodeURIComponent(id)}`, { headers: auth(bearer) }));
}

export async function extendLease(id: string, seconds: number, token: string): Promise<Lease> {
  const body = await call(`/v1/leases/${encodeURIComponent(id)}/extend`, {
    method: 'POST',
    headers: { ...json, 'x-cashu': token },
    body: JSON.stringify({ seconds }),
  });
  return toLease(body);
}

export async function stopLease(id: string, bearer: string): Promise<Lease> {
  return toLease(
    await call(`/v1/leases/${encodeURIComponent(id)}`, { method: 'DELETE', headers: auth(bearer) }),
  );
}

function auth(bearer: string): Record<string, string> {
  return { authorization: `Bearer ${bearer}` };
}

/** Price = ceil(amount_per_hour × seconds / 3600), as the node computes it (API.md). */
export function priceOf(offer: OfferInfo, seconds: number): number {
  // Integer ceiling without a float division that could round up a whole number.
  return Math.floor((offer.price.amount_per_hour * seconds + 3599) / 3600);
}
