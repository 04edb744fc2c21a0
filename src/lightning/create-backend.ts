import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { ClnBackend } from './cln/cln-backend.js';
import { CursorFile } from './cursor-file.js';
import { FakeLightningBackend } from './fake/fake-lightning.js';
import type { LightningBackend } from './lightning-backend.js';
import { LndBackend } from './lnd/lnd-backend.js';
import { NwcBackend } from './nwc/nwc-backend.js';

/** A backend and what stops it (connections, subscriptions). */
export interface RunningLightning {
  backend: LightningBackend;
  close(): Promise<void>;
}

/** A configured backend could not start (missing secret, unreadable file); the message names no secret. */
export class LightningConfigError extends Error {
  override name = 'LightningConfigError';
}

/**
 * The Lightning backend `mint.lightning` names. Secrets come from files (LND macaroon, CLN rune, NWC
 * URL) or the environment (ALACARTE_LND_MACAROON, ALACARTE_CLN_RUNE, ALACARTE_NWC_URL) and are never logged. Subscription
 * cursors live in `<dataDir>/lightning/`.
 */
export function createLightningBackend(
  settings: Config['mint']['lightning'],
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
): RunningLightning {
  const cursor = (name: string) => new CursorFile(join(dataDir, 'lightning', name));
  const expirySeconds = settings.invoiceExpirySeconds;
  switch (settings.backend) {
    case 'fake': {
      const backend = new FakeLightningBackend({
        settleDelayMs: settings.settleDelayMs,
        payDelayMs: settings.payDelayMs,
      });
      return { backend, close: async () => {} };
    }
    case 'lnd': {
      const lnd = required(settings.lnd, 'mint.lightning.lnd');
      const macaroonHex = lnd.macaroonPath
        ? readBytes(lnd.macaroonPath, 'LND macaroon').toString('hex')
        : env.ALACARTE_LND_MACAROON?.trim();
      if (!macaroonHex || !/^([0-9a-fA-F]{2})+$/.test(macaroonHex)) {
        throw new LightningConfigError(
          'LND needs a macaroon: mint.lightning.lnd.macaroonPath or ALACARTE_LND_MACAROON (hex)',
        );
      }
      const backend = new LndBackend({
        url: lnd.url,
        macaroonHex,
        tlsCertPem: readText(lnd.tlsCertPath, 'LND tls.cert'),
        cursor: cursor('lnd.settle_index'),
        expirySeconds,
      });
      return { backend, close: async () => backend.close() };
    }
    case 'cln': {
      const cln = required(settings.cln, 'mint.lightning.cln');
      const rune = cln.runePath ? readText(cln.runePath, 'CLN rune') : env.ALACARTE_CLN_RUNE?.trim();
      if (!rune)
        throw new LightningConfigError('CLN needs a rune: mint.lightning.cln.runePath or ALACARTE_CLN_RUNE');
      const backend = new ClnBackend({
        url: cln.url,
        rune,
        ...(cln.tlsCertPath ? { tlsCertPem: readText(cln.tlsCertPath, 'clnrest certificate') } : {}),
        cursor: cursor('cln.pay_index'),
        expirySeconds,
      });
      return { backend, close: async () => backend.close() };
    }
    case 'nwc': {
      const path = settings.nwc?.urlPath;
      const url = path ? readText(path, 'NWC URL') : env.ALACARTE_NWC_URL?.trim();
      if (!url)
        throw new LightningConfigError('NWC needs its URL: mint.lightning.nwc.urlPath or ALACARTE_NWC_URL');
      const backend = new NwcBackend({ url, cursor: cursor('nwc.settled_at'), expirySeconds });
      return { backend, close: () => backend.close() };
    }
  }
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new LightningConfigError(`${name} is not configured`);
  return value;
}

function readBytes(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new LightningConfigError(
      `cannot read the ${what} at ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new LightningConfigError(
      `cannot read the ${what} at ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}
