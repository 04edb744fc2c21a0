import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pruneEnded } from '../../../src/cli/renter/lease-commands.js';
import { LeaseBook, type LeaseBookEntry } from '../../../src/sdk/lease-book.js';
import type { PendingOp } from '../../../src/wallet/wallet-state.js';

const entry = (id: string, state: string): LeaseBookEntry => ({
  id,
  url: 'http://198.51.100.7:8402',
  token: `credential-of-${id}`,
  offer: 'small',
  image: 'busybox',
  created_at: '2026-12-01T10:00:00Z',
  expires_at: '2026-12-01T11:00:00Z',
  paid: 60,
  unit: 'sat',
  ports: {},
  state,
});

const op = (fields: Partial<PendingOp>): PendingOp => ({
  id: `op-${Math.random()}`,
  kind: 'refund',
  mint: 'http://198.51.100.7:8402/mint',
  unit: 'sat',
  createdAt: '2026-12-01T10:30:00Z',
  inputs: [],
  counters: [],
  ...fields,
});

/** `alacarte leases --prune`: what leaves the list, and what must stay for the money. */
describe('pruning the lease list', () => {
  it('drops the leases the node confirmed ended, keeps running ones and any a wallet operation still needs', () => {
    const book = new LeaseBook(mkdtempSync(join(tmpdir(), 'alacarte-prune-')));
    for (const [id, state] of [
      ['lse_expired', 'expired'],
      ['lse_stopped', 'stopped'],
      ['lse_failed', 'failed'],
      ['lse_running', 'running'],
      ['lse_refund_pending', 'stopped'],
      ['lse_extension_pending', 'expired'],
    ] as const)
      book.put(entry(id, state));
    const pending = [
      // A stop whose answer (the refund) was lost: only the lease's credential can fetch it again.
      op({ kind: 'refund', leaseId: 'lse_refund_pending' }),
      op({
        kind: 'payment',
        purpose: {
          kind: 'lease.extend',
          url: 'http://198.51.100.7:8402/v1/leases/lse_extension_pending/extend',
          idempotencyKey: 'k',
          leaseId: 'lse_extension_pending',
          seconds: 600,
        },
      }),
    ];
    const result = pruneEnded(book, pending);
    expect(result.removed.sort()).toEqual(['lse_expired', 'lse_failed', 'lse_stopped']);
    expect(result.held.sort()).toEqual(['lse_extension_pending', 'lse_refund_pending']);
    expect(
      book
        .list()
        .map((l) => l.id)
        .sort(),
    ).toEqual(['lse_extension_pending', 'lse_refund_pending', 'lse_running']);
    // Once the wallet has settled them, they go too.
    expect(pruneEnded(book, []).removed.sort()).toEqual(['lse_extension_pending', 'lse_refund_pending']);
    expect(book.list().map((l) => l.id)).toEqual(['lse_running']);
  });
});
