import type { PaymentRequired, PaymentRequirements, PaymentRequirementsV1 } from '@x402/core/types';
import { v1NetworkOf, type X402Settings } from './x402-settings.js';

/** The `exact` scheme's requirements (x402 v2) for `amount` smallest units of the operator's asset. */
export function requirementsOf(settings: X402Settings, amount: bigint): PaymentRequirements {
  return {
    scheme: 'exact',
    network: settings.network,
    asset: settings.asset,
    amount: amount.toString(),
    payTo: settings.payTo,
    maxTimeoutSeconds: settings.maxTimeoutSeconds,
    // The token's EIP-712 domain: what the payer signs under (EIP-3009).
    extra: { name: settings.assetName, version: settings.assetVersion },
  };
}

/**
 * The same requirements in x402 v1's form (`maxAmountRequired`, the resource inline, the chain by
 * its v1 name where it has one, else its CAIP-2 id).
 */
export function requirementsV1Of(
  settings: X402Settings,
  amount: bigint,
  resource: string,
  description: string,
): PaymentRequirementsV1 {
  return {
    scheme: 'exact',
    network: (v1NetworkOf(settings.network) ?? settings.network) as PaymentRequirementsV1['network'],
    maxAmountRequired: amount.toString(),
    resource,
    description,
    mimeType: 'application/json',
    outputSchema: {},
    payTo: settings.payTo,
    maxTimeoutSeconds: settings.maxTimeoutSeconds,
    asset: settings.asset,
    extra: { name: settings.assetName, version: settings.assetVersion },
  };
}

/** x402 v2's 402 answer, carried base64-encoded in the `PAYMENT-REQUIRED` header. */
export function paymentRequiredOf(
  settings: X402Settings,
  amount: bigint,
  resource: string,
  description: string,
): PaymentRequired {
  return {
    x402Version: 2,
    error: 'payment_required',
    resource: { url: resource, description, mimeType: 'application/json' },
    accepts: [requirementsOf(settings, amount)],
  };
}

/** Base64 of the JSON, as x402 encodes its headers. */
export function encodeHeader(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}
