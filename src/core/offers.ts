import { Amount } from './amount.js';
import type { Failure } from './errors.js';

/**
 * A sandbox's network (API.md "Images and network in offers"): `none` is loopback only; `egress` adds
 * outbound connections to the internet (never to the host, private or link-local ranges, nor port 25).
 */
export type OfferNetwork = 'none' | 'egress';

/** The bandwidth cap of an egress offer that names none, in megabits per second, each direction. */
export const DEFAULT_BANDWIDTH_MBIT = 50;

/** What a renter can buy: a sandbox size and its price per hour. From the operator's config. */
export interface Offer {
  id: string;
  vcpu: number;
  memoryMib: number;
  pids: number;
  diskMib: number;
  network: OfferNetwork;
  /** Egress cap in megabits per second, each direction (upload and download); only for egress. */
  bandwidthMbit: number;
  /** Price of one hour, in `unit`. */
  amountPerHour: bigint;
  unit: string;
  minSeconds: number;
  maxSeconds: number;
}

/**
 * The offers a node ships with when the operator configures none. With the crun driver the writable
 * disk is a tmpfs charged to the sandbox's memory, so each disk is half the memory: a full disk ends
 * in "No space left on device" with half the memory still there for processes, never in the
 * sandbox being killed for memory (see diskFitsMemory).
 */
export const DEFAULT_OFFERS: readonly Offer[] = [
  offer('small', 1, 512, 256, 256, 60n),
  offer('medium', 2, 2048, 1024, 1024, 240n),
  offer('large', 2, 8192, 4096, 4096, 900n),
  { ...offer('online', 1, 512, 256, 256, 80n), network: 'egress' },
];

/**
 * Whether an offer's disk fits its memory on a node whose writable disks are held in memory (crun:
 * a tmpfs counted in the sandbox's memory cgroup): files may take at most half of `memory_mib`, so
 * a tenant filling the disk sees ENOSPC and keeps memory for its processes. Offers that fail this
 * still work, but a sandbox that writes more than its memory is killed for memory and its lease
 * ends instead of a write failing.
 */
export function diskFitsMemory(o: Pick<Offer, 'memoryMib' | 'diskMib'>): boolean {
  return o.diskMib * 2 <= o.memoryMib;
}

function offer(
  id: string,
  vcpu: number,
  memoryMib: number,
  pids: number,
  diskMib: number,
  perHour: bigint,
): Offer {
  return {
    id,
    vcpu,
    memoryMib,
    pids,
    diskMib,
    network: 'none',
    bandwidthMbit: DEFAULT_BANDWIDTH_MBIT,
    amountPerHour: perHour,
    unit: 'sat',
    minSeconds: 60,
    maxSeconds: 30 * 24 * 3600,
  };
}

export interface Quote {
  offer: Offer;
  seconds: number;
  amount: Amount;
}

/** Price = ceil(amount_per_hour × seconds / 3600): a renter never gets a second for free. */
export function priceFor(offer: Offer, seconds: number): Amount {
  const numerator = offer.amountPerHour * BigInt(seconds);
  return Amount.of((numerator + 3599n) / 3600n, offer.unit);
}

/** Refund = floor(amount_per_hour × unused whole seconds / 3600): the node never refunds a fraction. */
export function refundFor(offer: Offer, unusedSeconds: number): Amount {
  const whole = Math.max(0, Math.floor(unusedSeconds));
  return Amount.of((offer.amountPerHour * BigInt(whole)) / 3600n, offer.unit);
}

export function quote(
  offers: readonly Offer[],
  offerId: string,
  seconds: number,
): { ok: true; quote: Quote } | Failure<'invalid_request'> {
  const found = offers.find((o) => o.id === offerId);
  if (!found) return { ok: false, code: 'invalid_request', message: `unknown offer '${offerId}'` };
  if (!Number.isSafeInteger(seconds) || seconds < found.minSeconds || seconds > found.maxSeconds) {
    // A whole number out of range is told which bound it missed, not only what a valid one is.
    const why = !Number.isSafeInteger(seconds)
      ? ''
      : seconds < found.minSeconds
        ? `${seconds} is too short: `
        : `${seconds} is too long: `;
    return {
      ok: false,
      code: 'invalid_request',
      message: `${why}seconds must be a whole number from ${found.minSeconds} (${spoken(found.minSeconds)}) to ${found.maxSeconds} (${spoken(found.maxSeconds)}) for offer '${found.id}'`,
    };
  }
  return { ok: true, quote: { offer: found, seconds, amount: priceFor(found, seconds) } };
}

/** The offer as the operator's configuration and the API spell it. */
export interface OfferJson {
  id: string;
  vcpu: number;
  memory_mib: number;
  pids: number;
  disk_mib: number;
  /** Absent in leases recorded before offers had a network: those had none. */
  network?: OfferNetwork;
  /** Megabits per second, each direction; shown for egress offers only. */
  bandwidth_mbit?: number;
  price: { amount_per_hour: number; unit: string };
  min_seconds: number;
  max_seconds: number;
}

export function offerFromJson(o: OfferJson): Offer {
  return {
    id: o.id,
    vcpu: o.vcpu,
    memoryMib: o.memory_mib,
    pids: o.pids,
    diskMib: o.disk_mib,
    network: o.network ?? 'none',
    bandwidthMbit: o.bandwidth_mbit ?? DEFAULT_BANDWIDTH_MBIT,
    amountPerHour: BigInt(o.price.amount_per_hour),
    unit: o.price.unit,
    minSeconds: o.min_seconds,
    maxSeconds: o.max_seconds,
  };
}

export function offerToJson(o: Offer): OfferJson {
  return {
    id: o.id,
    vcpu: o.vcpu,
    memory_mib: o.memoryMib,
    pids: o.pids,
    disk_mib: o.diskMib,
    network: o.network,
    ...(o.network === 'egress' ? { bandwidth_mbit: o.bandwidthMbit } : {}),
    price: { amount_per_hour: Number(o.amountPerHour), unit: o.unit },
    min_seconds: o.minSeconds,
    max_seconds: o.maxSeconds,
  };
}

/**
 * Seconds as the CLI's durations read (`30d`, `1h30m`, `90s`): an offer's bounds in an error are
 * then legible to whoever typed `--for 5s`, not only to a program.
 */
function spoken(seconds: number): string {
  const parts: string[] = [];
  let left = seconds;
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)}${unit}`);
      left %= size;
    }
  }
  return parts.join('') || '0s';
}
