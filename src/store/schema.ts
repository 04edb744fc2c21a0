import type { LeaseTables } from '../leases/lease-tables.js';

/**
 * The whole store's table types, one interface per domain, joined here so one Kysely instance
 * serves them all.
 */
export type Tables = LeaseTables;
