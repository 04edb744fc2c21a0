import type { LeaseTables } from '../leases/lease-tables.js';
import type { RefundTables } from '../leases/refund-tables.js';
import type { MintTables } from '../mint/store/tables.js';
import type { PayoutTables } from '../payouts/payout-tables.js';
import type { L402Tables } from '../rails/l402/l402-tables.js';
import type { X402Tables } from '../rails/x402/x402-tables.js';

/**
 * The whole store's table types, one interface per domain, joined here so one Kysely instance
 * serves them all.
 */
export type Tables = LeaseTables & RefundTables & MintTables & PayoutTables & L402Tables & X402Tables;
