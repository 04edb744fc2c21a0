import { x402Client, x402HTTPClient } from '@x402/core/client';
import { decodePaymentRequiredHeader } from '@x402/core/http';
import type { PaymentPayload } from '@x402/core/types';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

/**
 * The official x402 client's payment for a 402 (its PAYMENT-REQUIRED header, x402 v2): the
 * payload a stock client signs (EIP-3009, `exact`) and the headers it would send with it. Its
 * spend controls are off, so that it signs whatever the requirements say (tests of payments the
 * node must refuse: another asset, another network).
 */
export async function x402PaymentFor(
  key: Hex,
  paymentRequiredHeader: string,
): Promise<{ payload: PaymentPayload; headers: Record<string, string> }> {
  const client = new x402Client()
    .register('eip155:*', new ExactEvmScheme(privateKeyToAccount(key)))
    .setSpendControls(false);
  const payload = await client.createPaymentPayload(decodePaymentRequiredHeader(paymentRequiredHeader));
  const encoded = new x402HTTPClient(client).encodePaymentSignatureHeader(payload);
  // Header names as a server reads them (lower case).
  const headers = Object.fromEntries(Object.entries(encoded).map(([k, v]) => [k.toLowerCase(), v]));
  return { payload, headers };
}

/** A payload as base64 JSON, the way x402 carries it in a header (for tampered payloads). */
export function encodePayment(payload: unknown): string {
  return Buffer.from(JSON.stringify(payload), 'utf8').toString('base64');
}
