import bolt11 from 'bolt11';

/** The bech32 currency prefixes of BOLT11 (`lnbc…` mainnet, `lntb…` testnet, `lntbs…` signet, …). */
export const BOLT11_NETWORKS = ['bc', 'tb', 'tbs', 'bcrt', 'sb'] as const;
export type Bolt11Network = (typeof BOLT11_NETWORKS)[number];

/**
 * Longest payment request we look at. BOLT11 sets no limit, but a description is at most 639 bytes
 * and real invoices with a few route hints stay far below this; the bound keeps a hostile melt
 * request from making the bech32 decoder chew on megabytes.
 */
export const MAX_BOLT11_LENGTH = 4096;

/** BOLT11: an invoice without an `x` field expires an hour after its timestamp. */
const DEFAULT_EXPIRY_SECONDS = 3600;

export interface DecodedBolt11 {
  /** The amount the invoice asks for, undefined for an amountless invoice. */
  amountMsat: bigint | undefined;
  /** hex, 32 bytes */
  paymentHash: string;
  expiresAt: Date;
  network: Bolt11Network;
  /** hex compressed public key recovered from the signature */
  payeeNodeKey: string;
  description: string | undefined;
}

/** The network description `bolt11` wants for encoding and decoding; the address versions only matter for fallback addresses. */
export function bolt11NetworkParams(network: Bolt11Network): {
  bech32: string;
  pubKeyHash: number;
  scriptHash: number;
  validWitnessVersions: number[];
} {
  return network === 'bc'
    ? { bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, validWitnessVersions: [0, 1] }
    : network === 'sb'
      ? { bech32: 'sb', pubKeyHash: 0x3f, scriptHash: 0x7b, validWitnessVersions: [0, 1] }
      : { bech32: network, pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };
}

// Human-readable part: `ln` + network + optional amount (no leading zero, as BOLT11 requires).
// The longer prefixes come first so that `lntbs` is signet, not testnet with a stray `s`.
const HRP = /^ln(bcrt|bc|tbs|tb|sb)(?:[1-9][0-9]*[munp]?)?$/;
const HEX32 = /^[0-9a-f]{64}$/;

/**
 * Decodes an untrusted BOLT11 payment request, or returns undefined when it is not one (wrong type,
 * too long, unknown network, bad checksum or signature, no payment hash). Never throws.
 */
export function decodeBolt11(input: unknown): DecodedBolt11 | undefined {
  if (typeof input !== 'string' || input.length > MAX_BOLT11_LENGTH) return undefined;
  const separator = input.lastIndexOf('1');
  if (separator < 0) return undefined;
  const hrp = HRP.exec(input.slice(0, separator).toLowerCase());
  const network = hrp?.[1] as Bolt11Network | undefined;
  if (network === undefined) return undefined;
  try {
    const decoded = bolt11.decode(input, bolt11NetworkParams(network));
    const paymentHash = decoded.tagsObject.payment_hash;
    if (typeof paymentHash !== 'string' || !HEX32.test(paymentHash)) return undefined;
    if (decoded.timestamp === undefined || decoded.payeeNodeKey === undefined) return undefined;
    const expiry = decoded.tagsObject.expire_time ?? DEFAULT_EXPIRY_SECONDS;
    const msat = decoded.millisatoshis;
    return {
      amountMsat: msat === null || msat === undefined ? undefined : BigInt(msat),
      paymentHash,
      expiresAt: new Date((decoded.timestamp + expiry) * 1000),
      network,
      payeeNodeKey: decoded.payeeNodeKey,
      description: decoded.tagsObject.description,
    };
  } catch {
    return undefined;
  }
}

const NETWORK_NAMES: Record<Bolt11Network, string> = {
  bc: 'mainnet',
  tb: 'testnet',
  tbs: 'signet',
  bcrt: 'regtest',
  sb: 'simnet',
};

/**
 * Why `invoice` cannot be paid by a node on `network` (an invoice is for one chain: BOLT11's
 * prefix), e.g. "the invoice is for mainnet (lnbc…), this node's Lightning is on regtest";
 * undefined when it is for that chain, or the chain is not known.
 */
export function wrongNetwork(invoice: DecodedBolt11, network: Bolt11Network | undefined): string | undefined {
  if (network === undefined || invoice.network === network) return undefined;
  return (
    `the invoice is for ${NETWORK_NAMES[invoice.network]} (ln${invoice.network}…), ` +
    `this node's Lightning is on ${NETWORK_NAMES[network]}`
  );
}
