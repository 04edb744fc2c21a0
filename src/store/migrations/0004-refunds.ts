import { type Kysely, sql } from 'kysely';

/**
 * Money per mint. `lease_refunds`: how a lease's refund was split over the mints its payments were
 * kept at (one row per lease and mint, `position` = the order tokens are shown in).
 * `bounced_payments`: payments a mint took that bought nothing (the lease ended meanwhile) and
 * were handed back whole. Neither holds a token: the tokens are derived again when shown.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('lease_refunds')
    .addColumn('lease_id', 'text', (c) => c.notNull().references('leases.id'))
    .addColumn('mint_url', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('lease_refunds_pk', ['lease_id', 'mint_url'])
    .execute();
  // Refunds booked before this migration were all paid from the mint of the lease's first payment.
  await sql`
    insert into lease_refunds (lease_id, mint_url, position, amount)
    select l.id,
           (select p.mint_url from payments p where p.lease_id = l.id order by p.seq limit 1),
           0,
           l.refunded
    from leases l
    where l.refunded > 0
      and exists (select 1 from payments p where p.lease_id = l.id)
  `.execute(db);

  await db.schema
    .createTable('bounced_payments')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('lease_id', 'text', (c) => c.notNull().references('leases.id'))
    .addColumn('mint_url', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('returned', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('bounced_payments').execute();
  await db.schema.dropTable('lease_refunds').execute();
}
