/**
 * The whole store's table types, one interface per domain, joined here so one Kysely instance
 * serves them all.
 */
// biome-ignore lint/complexity/noBannedTypes: grows as domains add their tables.
export type Tables = {};
