import { readFileSync } from 'node:fs';
import type { Config } from '../../config.js';
import { createFacilitator, type X402Facilitator } from './facilitator.js';
import type { EvmAddress, X402Settings } from './x402-settings.js';

/** The x402 block of the configuration could not be used (a missing key); the message names no secret. */
export class X402ConfigError extends Error {
  override name = 'X402ConfigError';
}

/** The operator's x402 settings from the config block (its rate as bigints). */
export function x402SettingsOf(x402: NonNullable<Config['x402']>): X402Settings {
  return {
    network: x402.network as X402Settings['network'],
    asset: x402.asset as EvmAddress,
    assetName: x402.assetName,
    assetVersion: x402.assetVersion,
    payTo: x402.payTo as EvmAddress,
    rate: { atomicUnits: BigInt(x402.rate.atomicUnits), sats: BigInt(x402.rate.sats) },
    maxTimeoutSeconds: x402.maxTimeoutSeconds,
  };
}

/**
 * The node's own facilitator for `x402`: its account's key from `facilitatorKeyPath` or
 * ALACARTE_X402_FACILITATOR_KEY (hex, with or without 0x). Throws X402ConfigError without one.
 */
export function facilitatorOf(
  x402: NonNullable<Config['x402']>,
  env: NodeJS.ProcessEnv = process.env,
): X402Facilitator {
  let key: string | undefined;
  if (x402.facilitatorKeyPath) {
    try {
      key = readFileSync(x402.facilitatorKeyPath, 'utf8').trim();
    } catch (err) {
      throw new X402ConfigError(
        `cannot read x402.facilitatorKeyPath ${x402.facilitatorKeyPath}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  } else {
    key = env.ALACARTE_X402_FACILITATOR_KEY?.trim();
  }
  const hex = key?.replace(/^0x/, '');
  if (!hex || !/^[0-9a-fA-F]{64}$/.test(hex))
    throw new X402ConfigError(
      'x402 needs the facilitator account key (64 hex digits): x402.facilitatorKeyPath or ALACARTE_X402_FACILITATOR_KEY',
    );
  return createFacilitator({
    settings: x402SettingsOf(x402),
    rpcUrl: x402.rpcUrl,
    privateKey: `0x${hex}`,
    confirmationTimeoutMs: x402.confirmationTimeoutMs,
  });
}
