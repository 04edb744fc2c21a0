/** The node's HTTP API (API.md), as the page uses it: same origin, JSON, checked at the boundary. */

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
}

/** The part of a refund one mint pays back. */
export interface MintRefund {
  mint: string;
  token: string;
  amount: number;
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

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new Error(`bad ${what} from the node`);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > 100_000) throw new Error(`bad ${what} from the node`);
  return v;
}

export async function getOffers(): Promise<Offers> {
  const body = await call('/v1/offers');
  if (!isObject(body) || !Array.isArray(body.offers)) throw new Error('bad offers from the node');
  const offers = body.offers.slice(0, 50).map((o): OfferInfo => {
    if (!isObject(o) || !isObject(o.price)) throw new Error('bad offer from the node');
    return {
      id: str(o.id, 'offer id'),
      vcpu: num(o.vcpu, 'vcpu'),
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
  return { offers, images, mint: str(mints[0], 'mint'), unit: str(payment.unit ?? 'sat', 'unit') };
}

export async function getQuote(offer: string, seconds: number): Promise<number> {
  const q = new URLSearchParams({ offer, seconds: String(seconds) });
  const body = await call(`/v1/quote?${q}`);
  if (!isObject(body)) throw new Error('bad quote from the node');
  return num(body.amount, 'quote');
}

function toLease(body: unknown): Lease {
  if (!isObject(body)) throw new Error('bad lease from the node');
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
  };
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
  request: { offer: string; seconds: number; image: string },
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
