import type { PaymentPayload, PaymentPayloadV1, PaymentRequirements } from '@x402/core/types';
import { authorizationTypes } from '@x402/evm';
import { verifyTypedData } from 'viem';
import { z } from 'zod';
import type { PaymentHeaders } from '../payment-rail.js';
import { chainIdOf, type EvmAddress, v1NetworkOf, type X402Settings } from './x402-settings.js';

/** x402 v2's payment header, and v1's (API.md names v1's; the stock client speaks v2). */
export const V2_HEADER = 'payment-signature';
export const V1_HEADER = 'x-payment';

/**
 * Longest payment header read: an EIP-3009 payload with its accepted requirements and resource is
 * about 1.5 KiB of base64 (its signature 65 bytes: only plain account signatures are taken).
 */
export const MAX_HEADER_CHARS = 8 * 1024;

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const uint256 = z.string().regex(/^(0|[1-9][0-9]{0,77})$/);
const authorization = z.object({
  from: address,
  to: address,
  value: uint256,
  validAfter: uint256,
  validBefore: uint256,
  nonce: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
});
/** The `exact` scheme's EIP-3009 payload (a Permit2 payload has no `authorization`: refused). */
const exactPayload = z.object({
  signature: z.string().regex(/^0x(?:[0-9a-fA-F]{2}){1,1024}$/),
  authorization,
});
const v2Payload = z.object({
  x402Version: z.literal(2),
  accepted: z.object({
    scheme: z.string().max(64),
    network: z.string().max(64),
    asset: z.string().max(128),
    amount: z.string().max(80),
    payTo: z.string().max(128),
    maxTimeoutSeconds: z.number().int().nonnegative(),
    extra: z.record(z.string(), z.unknown()).optional(),
  }),
  payload: exactPayload,
  resource: z
    .object({ url: z.string().max(4096) })
    .loose()
    .optional(),
});
const v1Payload = z.object({
  x402Version: z.literal(1),
  scheme: z.string().max(64),
  network: z.string().max(64),
  payload: exactPayload,
});

/** The EIP-3009 authorization a payment carries. */
export type Authorization = z.infer<typeof authorization>;

/** An x402 payment read from a request, checked against the operator's settings and signed by its payer. */
export interface X402Payment {
  version: 1 | 2;
  authorization: Authorization;
  signature: `0x${string}`;
  /** The authorization's value, smallest units of the asset. */
  value: bigint;
  payer: EvmAddress;
  /** The payload as the facilitator takes it (v1 or v2 form). */
  payload: PaymentPayload | PaymentPayloadV1;
}

export type ReadOutcome =
  | { ok: true; payment: X402Payment }
  | { ok: false; absent: true }
  | { ok: false; absent?: undefined; message: string };

/**
 * Reads the request's x402 payment (`PAYMENT-SIGNATURE`, else `X-PAYMENT`): bounded, decoded,
 * validated, for the operator's scheme, network, asset and payee, and signed by the payer it names
 * (EIP-712 over the token's domain, checked by viem). No money moves and no chain is asked: what
 * it accepts is a payment its payer really authorised, so its key may unlock a replay.
 */
export async function readPayment(headers: PaymentHeaders, settings: X402Settings): Promise<ReadOutcome> {
  const v2 = headers[V2_HEADER];
  const v1 = headers[V1_HEADER];
  const raw = typeof v2 === 'string' ? v2 : typeof v1 === 'string' ? v1 : undefined;
  if (raw === undefined) return { ok: false, absent: true };
  if (raw.length > MAX_HEADER_CHARS) return invalid('the x402 payment header is too long');
  let json: unknown;
  try {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(raw.trim())) throw new Error('not base64');
    json = JSON.parse(Buffer.from(raw.trim(), 'base64').toString('utf8'));
  } catch {
    return invalid('the x402 payment header is not base64 of a JSON payment payload');
  }
  const version = (json as { x402Version?: unknown } | null)?.x402Version;
  let payment: X402Payment;
  if (version === 2) {
    const parsed = v2Payload.safeParse(json);
    if (!parsed.success) return invalid('the x402 payment is not an exact EIP-3009 payment of x402 v2');
    const { accepted, payload } = parsed.data;
    if (accepted.scheme !== 'exact') return invalid('this node takes the x402 scheme exact only');
    if (accepted.network !== settings.network)
      return invalid(`this node takes x402 payments on ${settings.network} only`);
    if (!sameAddress(accepted.asset, settings.asset)) return invalid('the x402 payment is in another asset');
    if (!sameAddress(accepted.payTo, settings.payTo)) return invalid('the x402 payment is for another payee');
    payment = paymentOf(2, payload, {
      x402Version: 2,
      accepted: accepted as PaymentRequirements,
      payload,
      ...(parsed.data.resource ? { resource: parsed.data.resource as PaymentPayload['resource'] } : {}),
    });
  } else if (version === 1) {
    const parsed = v1Payload.safeParse(json);
    if (!parsed.success) return invalid('the x402 payment is not an exact EIP-3009 payment of x402 v1');
    const { scheme, network, payload } = parsed.data;
    if (scheme !== 'exact') return invalid('this node takes the x402 scheme exact only');
    const name = v1NetworkOf(settings.network);
    if (!name || network !== name)
      return invalid(`this node takes x402 v1 payments on ${name ?? 'no v1 network'} only`);
    payment = paymentOf(1, payload, {
      x402Version: 1,
      scheme,
      network: network as PaymentPayloadV1['network'],
      payload,
    });
  } else {
    return invalid('this node speaks x402 versions 1 and 2');
  }
  if (!sameAddress(payment.authorization.to, settings.payTo))
    return invalid('the x402 authorization pays another address');
  if (!(await signedByPayer(payment, settings)))
    return invalid('the x402 authorization is not signed by its payer');
  return { ok: true, payment };
}

/**
 * Whether the payer signed the authorization (EIP-712 under the token's domain, recovered by viem
 * locally). Only plain account signatures are taken: a smart wallet's (EIP-1271/6492) would need
 * the chain asked before any check of the payment, for every request.
 */
async function signedByPayer(payment: X402Payment, settings: X402Settings): Promise<boolean> {
  const a = payment.authorization;
  try {
    return await verifyTypedData({
      address: payment.payer,
      domain: {
        name: settings.assetName,
        version: settings.assetVersion,
        chainId: chainIdOf(settings.network),
        verifyingContract: settings.asset,
      },
      types: authorizationTypes,
      primaryType: 'TransferWithAuthorization',
      message: {
        from: a.from as EvmAddress,
        to: a.to as EvmAddress,
        value: BigInt(a.value),
        validAfter: BigInt(a.validAfter),
        validBefore: BigInt(a.validBefore),
        nonce: a.nonce as `0x${string}`,
      },
      signature: payment.signature,
    });
  } catch {
    return false;
  }
}

function paymentOf(
  version: 1 | 2,
  payload: z.infer<typeof exactPayload>,
  whole: PaymentPayload | PaymentPayloadV1,
): X402Payment {
  return {
    version,
    authorization: payload.authorization,
    signature: payload.signature as `0x${string}`,
    value: BigInt(payload.authorization.value),
    payer: payload.authorization.from as EvmAddress,
    payload: whole,
  };
}

export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function invalid(message: string): ReadOutcome {
  return { ok: false, message };
}
