import type { Migration } from 'kysely';
import * as mint from './0001-mint.js';
import * as leases from './0002-leases.js';
import * as requestHash from './0003-request-hash.js';
import * as refunds from './0004-refunds.js';
import * as mintSignatureQuote from './0006-mint-signature-quote.js';
import * as leaseSshKeys from './0007-lease-ssh-keys.js';
import * as mintQuotePubkey from './0008-mint-quote-pubkey.js';
import * as payouts from './0010-payouts.js';
import * as l402Payments from './0011-l402-payments.js';
import * as leaseTarget from './0012-lease-target.js';
import * as payoutChangeSpent from './0013-payout-change-spent.js';
import * as x402Payments from './0014-x402-payments.js';
import * as x402Settlements from './0015-x402-settlements.js';
import * as nodeIdentity from './0016-node-identity.js';

/**
 * Every schema migration, in order. Each domain adds its own files here (`0001-mint.ts`, ...).
 * Names sort in application order; a migration, once released, is never edited — add a new one.
 * Keep SQL portable: SQLite now, PostgreSQL later.
 */
export const MIGRATIONS: ReadonlyArray<{ name: string; migration: Migration }> = [
  { name: '0001-mint', migration: mint },
  { name: '0002-leases', migration: leases },
  { name: '0003-request-hash', migration: requestHash },
  { name: '0004-refunds', migration: refunds },
  { name: '0006-mint-signature-quote', migration: mintSignatureQuote },
  { name: '0007-lease-ssh-keys', migration: leaseSshKeys },
  { name: '0008-mint-quote-pubkey', migration: mintQuotePubkey },
  { name: '0010-payouts', migration: payouts },
  { name: '0011-l402-payments', migration: l402Payments },
  { name: '0012-lease-target', migration: leaseTarget },
  { name: '0013-payout-change-spent', migration: payoutChangeSpent },
  { name: '0014-x402-payments', migration: x402Payments },
  { name: '0015-x402-settlements', migration: x402Settlements },
  { name: '0016-node-identity', migration: nodeIdentity },
];
