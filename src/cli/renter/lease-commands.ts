import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseLeaseId } from '../../core/ids.js';
import { bearerOf } from '../../http/lease-schemas.js';
import { formatDuration } from '../../sdk/duration.js';
import { AlacarteApiError, AlacarteNetworkError } from '../../sdk/errors.js';
import { bookEntryOf, LeaseBook } from '../../sdk/lease-book.js';
import type { Lease } from '../../sdk/types.js';
import type { PendingOp } from '../../wallet/wallet-state.js';
import type { Handler } from './commands.js';
import { formatWhen, table, UsageError } from './ui.js';

/** States a lease never leaves: the node has ended it (API.md "Lease lifecycle"). */
const ENDED = new Set(['expired', 'stopped', 'failed']);

/**
 * `alacarte leases [--prune]`: the leases of this machine's list with their state as the node
 * gives it. `--prune` removes from the list the leases the node has confirmed ended, except one
 * an unfinished wallet operation still needs (a refund to fetch again with its credential).
 */
export const leases: Handler = async (ctx, values, positionals) => {
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`, 'leases');
  const prune = values.prune === true;
  const sdk = ctx.sdk({ wallet: false });
  // A lease the node stopped gets its refund collected first (which needs the wallet); pruning
  // settles what an interrupted command left first, so that less is held back.
  if (prune || sdk.leases().some((l) => l.state === 'running')) await ctx.recover();
  const entries = sdk.leases();
  ctx.progress.start('asking the node');
  const now = Date.now();
  /** Leases whose node did not answer at all: shown as last seen, and said so. */
  const unreached: string[] = [];
  const fresh = await Promise.all(
    entries.map(async (e) => {
      if (e.state !== 'running') return { entry: e, lease: undefined };
      const lease: Lease | undefined = await sdk.status(e.id).catch((err: unknown) => {
        if (err instanceof AlacarteNetworkError) unreached.push(e.id);
        return undefined;
      });
      return { entry: e, lease };
    }),
  );
  ctx.progress.stop();
  const answered = new Set(fresh.filter((f) => f.lease !== undefined).map((f) => f.entry.id));
  const list = fresh.map(({ entry, lease }) => {
    const state =
      lease?.state ??
      (entry.state === 'running' && Date.parse(entry.expires_at) < now ? 'expired' : entry.state);
    const left =
      state === 'running'
        ? (lease?.remaining_seconds ?? Math.max(0, Math.floor((Date.parse(entry.expires_at) - now) / 1000)))
        : 0;
    return {
      id: entry.id,
      state,
      offer: entry.offer,
      image: entry.image,
      expires_at: lease?.expires_at ?? entry.expires_at,
      remaining_seconds: left,
      url: entry.url,
      ports: lease?.ports ?? entry.ports,
    };
  });
  const pruned = prune ? pruneEnded(new LeaseBook(ctx.home), ctx.wallet().pendingOps()) : undefined;
  const shown = pruned ? list.filter((l) => !pruned.removed.includes(l.id)) : list;
  const rows = [['LEASE', 'STATE', 'OFFER', 'IMAGE', 'LEFT', 'NODE']];
  for (const l of shown)
    rows.push([
      l.id,
      l.state,
      l.offer,
      l.image,
      l.state === 'running' ? formatDuration(l.remaining_seconds) : '-',
      l.url,
    ]);
  // Published ports of running leases, under the table: URLs are too long for a column.
  const portLines = shown
    .filter((l) => l.state === 'running')
    .flatMap((l) => Object.entries(l.ports ?? {}).map(([port, url]) => `${l.id} port ${port}: ${url}`));
  // Why an ended lease stays: a refund still to fetch, or an end only the clock suggests.
  const keptBecause = (id: string) =>
    pruned?.held.includes(id) || answered.has(id)
      ? 'its refund is still to be collected (the next command tries again)'
      : 'the node has not confirmed that it ended (is it reachable?)';
  const notes: string[] = [];
  const stale = shown.filter((l) => unreached.includes(l.id));
  if (stale.length)
    notes.push(
      `${stale.length} lease(s) shown as last seen: their node did not answer (${[...new Set(stale.map((l) => l.url))].join(', ')})`,
    );
  if (pruned) {
    notes.push(
      pruned.removed.length
        ? `removed ${pruned.removed.length} ended lease(s) from this list: ${pruned.removed.join(', ')}`
        : 'no ended lease to remove from this list',
    );
    for (const l of shown.filter((l) => ENDED.has(l.state))) notes.push(`kept ${l.id}: ${keptBecause(l.id)}`);
  } else {
    const ended = shown.filter((l) => ENDED.has(l.state)).length;
    if (ended) notes.push(`${ended} ended; remove them from this list with: alacarte leases --prune`);
  }
  const head = shown.length
    ? [table(rows), ...portLines]
    : [
        entries.length
          ? 'no leases left in the list'
          : 'no leases rented from this machine yet — try: alacarte rent --offer small --for 1h',
      ];
  const human = [...head, ...(entries.length ? notes : [])].join('\n');
  ctx.out(human, { leases: shown, ...(pruned ? { pruned: pruned.removed } : {}) });
  return 0;
};

/**
 * Removes from `book` the leases whose end the node confirmed (their state there was set from a
 * node's answer: a listing guess from the clock never lands in the book), unless a pending wallet
 * operation names one: a refund not yet fetched needs its credential. Change and refunds already
 * taken are the wallet's own records, which need no lease entry.
 */
export function pruneEnded(
  book: LeaseBook,
  pending: readonly PendingOp[],
): { removed: string[]; held: string[] } {
  const removed: string[] = [];
  const held: string[] = [];
  for (const entry of book.list()) {
    if (!ENDED.has(entry.state)) continue;
    const needed = pending.some(
      (op) =>
        op.leaseId === entry.id || (op.purpose?.kind === 'lease.extend' && op.purpose.leaseId === entry.id),
    );
    if (needed) {
      held.push(entry.id);
      continue;
    }
    book.remove(entry.id);
    removed.push(entry.id);
  }
  return { removed, held };
}

/** The most a credential file may hold: a credential, or the JSON answer that carried it. */
const CREDENTIAL_FILE_MAX = 64 * 1024;

/**
 * `alacarte leases add ID [--credential-file FILE|-]`: adds a lease rented some other way (curl,
 * another machine) to this machine's list, once the node at --url has accepted its credential.
 * The credential comes from a file or standard input, never the command line (`ps` shows that).
 */
export const addLease: Handler = async (ctx, values, positionals) => {
  const [idArg, extra] = positionals;
  if (idArg === undefined)
    throw new UsageError(
      'which lease? give its id: alacarte leases add lse_… --credential-file FILE',
      'leases add',
    );
  if (extra !== undefined)
    throw new UsageError(
      // Not echoed whole: it may be the credential itself.
      `unexpected argument '${extra.length > 12 ? `${extra.slice(0, 4)}…` : extra}': the credential goes in a file or on standard input, never on the command line (ps shows it)`,
      'leases add',
    );
  const id = parseLeaseId(idArg);
  if (!id)
    throw new UsageError(
      `'${idArg.slice(0, 80)}' is not a lease id (lse_ and 26 letters or digits)`,
      'leases add',
    );
  const token = credentialIn(await readCredentialText(values['credential-file']), id);
  const sdk = ctx.sdk({ wallet: false });
  ctx.progress.start('asking the node');
  let lease: Lease;
  try {
    lease = await sdk.status(id, { token });
  } catch (err) {
    if (err instanceof AlacarteApiError && err.code === 'unauthorized')
      throw new Error(
        `the node at ${ctx.url} does not accept that credential for lease ${id} (or has no such lease); nothing was added`,
      );
    throw err;
  } finally {
    ctx.progress.stop();
  }
  if (ENDED.has(lease.state))
    throw new Error(
      `lease ${id} has ended (${lease.state}) at ${ctx.url}; nothing was added (a refund it is owed comes with DELETE /v1/leases/${id} and its credential)`,
    );
  const book = new LeaseBook(ctx.home);
  const before = book.get(id);
  const entry = bookEntryOf(lease, ctx.url, token);
  book.put(entry);
  const how =
    before === undefined
      ? 'added'
      : before.token === token
        ? 'already listed; updated'
        : 'credential replaced';
  const left = formatDuration(lease.remaining_seconds ?? 0);
  ctx.out(
    [
      `lease ${id} ${how}: ${lease.state}, ${lease.offer}, ${lease.image}, until ${formatWhen(lease.expires_at)} (${left} left), at ${ctx.url}`,
      `its credential is kept in ${join(ctx.home, 'leases.json')}`,
      `next: alacarte exec ${id} -- uname -a | alacarte shell ${id} | alacarte stop ${id}`,
    ].join('\n'),
    { ...lease, url: ctx.url, added: before === undefined },
  );
  return 0;
};

/** The text of `--credential-file FILE` (`-`: standard input), or of standard input when piped. */
async function readCredentialText(file: unknown): Promise<string> {
  const path = typeof file === 'string' && file !== '-' ? file : undefined;
  if (path !== undefined) {
    let size: number;
    try {
      const stat = statSync(path);
      if (!stat.isFile()) throw new UsageError(`--credential-file: ${path} is not a file`, 'leases add');
      size = stat.size;
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`--credential-file: cannot read ${path}`, 'leases add');
    }
    if (size > CREDENTIAL_FILE_MAX) throw tooLong();
    return readFileSync(path, 'utf8');
  }
  if (file === undefined && process.stdin.isTTY === true)
    throw new UsageError(
      'give the credential with --credential-file FILE, or pipe it in (not as an argument: ps would show it)',
      'leases add',
    );
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > CREDENTIAL_FILE_MAX) {
      process.stdin.destroy();
      throw tooLong();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length).toString('utf8');
}

function tooLong(): UsageError {
  return new UsageError(
    `the credential's input is over ${CREDENTIAL_FILE_MAX} bytes: is it the right file?`,
    'leases add',
  );
}

/**
 * The bearer credential in `text`: the credential alone (surrounding white space ignored), or the
 * JSON answer of `POST /v1/leases` that carried it (its `token`; its `id` must be the lease's).
 */
function credentialIn(text: string, id: string): string {
  const trimmed = text.trim();
  let token: unknown = trimmed;
  if (trimmed.startsWith('{')) {
    let answer: { id?: unknown; token?: unknown };
    try {
      answer = JSON.parse(trimmed) as { id?: unknown; token?: unknown };
    } catch {
      throw new UsageError('the credential input starts like JSON but is not JSON', 'leases add');
    }
    if (answer.id !== undefined && answer.id !== id)
      throw new UsageError(
        `that answer is of lease ${String(answer.id).slice(0, 80)}, not ${id}`,
        'leases add',
      );
    token = answer.token;
  }
  if (typeof token !== 'string' || token === '' || bearerOf(`Bearer ${token}`) === undefined)
    throw new UsageError(
      'no lease credential in that input: give the "token" of the lease answer (or the whole JSON answer)',
      'leases add',
    );
  return token;
}
