import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import secp256k1 from 'secp256k1';
import type { Config } from '../config.js';
import { ClnBackend } from './cln/cln-backend.js';
import { CursorFile } from './cursor-file.js';
import { FakeJournal } from './fake/fake-journal.js';
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
      // Its key and invoices in the data directory: invoices paid before a restart stay paid.
      const backend = new FakeLightningBackend({
        settleDelayMs: settings.settleDelayMs,
        payDelayMs: settings.payDelayMs,
        nodeKey: fakeNodeKey(join(dataDir, 'lightning', 'fake-node.key')),
        journal: new FakeJournal(join(dataDir, 'lightning', 'fake-invoices.jsonl'), FAKE_MAX_INVOICES),
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

/** Invoices the fake backend remembers (and keeps on disk). */
const FAKE_MAX_INVOICES = 100_000;

/** The fake backend's node key (hex in a 0600 file), made on first use. */
function fakeNodeKey(path: string): Uint8Array {
  try {
    const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
    if (key.length === 32 && secp256k1.privateKeyVerify(key)) return key;
  } catch {
    // None yet.
  }
  let key = randomBytes(32);
  while (!secp256k1.privateKeyVerify(key)) key = randomBytes(32);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${key.toString('hex')}\n`, { mode: 0o600 });
  return key;
}
