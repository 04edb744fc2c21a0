import { Amount } from '../../core/amount.js';

/** An EVM address, `0x` and 40 hex digits (any case: compared in lower case). */
export type EvmAddress = `0x${string}`;

/**
 * What the operator sells for over x402 (config `x402`, API.md "x402 (EVM stablecoins) as a third
 * payment rail"): one EIP-3009 stablecoin on one EVM chain, paid to one address, at one rate.
 */
export interface X402Settings {
  /** CAIP-2 chain id, `eip155:<chain id>` (x402 v2's network). */
  network: `eip155:${string}`;
  /** The stablecoin's contract (EIP-3009 `transferWithAuthorization`, like USDC). */
  asset: EvmAddress;
  /** Its EIP-712 domain name and version, as the token signs them (USDC: "USD Coin", "2"). */
  assetName: string;
  assetVersion: string;
  /** Where the payments go: the operator's address. */
  payTo: EvmAddress;
  /** The price's value in the asset: `atomicUnits` smallest units of the asset per `sats` sat. */
  rate: { atomicUnits: bigint; sats: bigint };
  /** How long a signed authorization stays good (x402's maxTimeoutSeconds). */
  maxTimeoutSeconds: number;
}

/** The chain id of a CAIP-2 `eip155:<id>` network. */
export function chainIdOf(network: string): number {
  const id = Number(network.slice('eip155:'.length));
  if (!network.startsWith('eip155:') || !Number.isSafeInteger(id) || id <= 0)
    throw new RangeError(`not an eip155 network: ${network}`);
  return id;
}

/**
 * The x402 v1 name of a chain (v1 spoke names, not CAIP-2 ids), for the v1 `X-PAYMENT` header:
 * the networks of the official packages' v1 table that alacarte sells on. Undefined: v2 only.
 */
export function v1NetworkOf(network: string): string | undefined {
  return V1_NAMES[network];
}

const V1_NAMES: Readonly<Record<string, string>> = {
  'eip155:1': 'ethereum',
  'eip155:11155111': 'sepolia',
  'eip155:8453': 'base',
  'eip155:84532': 'base-sepolia',
  'eip155:137': 'polygon',
  'eip155:80002': 'polygon-amoy',
  'eip155:43114': 'avalanche',
  'eip155:43113': 'avalanche-fuji',
};

/**
 * The price in the asset's smallest units at the operator's rate, rounded up (the operator never
 * sells below the rate): ceil(price × atomicUnits / sats).
 */
export function atomicOf(price: Amount, rate: X402Settings['rate']): bigint {
  const n = price.value * rate.atomicUnits;
  return (n + rate.sats - 1n) / rate.sats;
}

/**
 * What `value` smallest units of the asset are worth at the rate, rounded down (a payment never
 * counts for more than it brought): floor(value × sats / atomicUnits), in `unit`. The inverse of
 * atomicOf: satsOf(atomicOf(p)) ≥ p.
 */
export function satsOf(value: bigint, rate: X402Settings['rate'], unit: string): Amount {
  return Amount.of((value * rate.sats) / rate.atomicUnits, unit);
}
