import { AlacarteError } from '../core/errors.js';
import type { Logger } from '../log.js';
import type { ReplicaNotices } from '../store/replica-notices.js';

/** What the holder of a sandbox says it did: the deadline it wrote (ms), or that the sandbox ended. */
export type HolderOutcome = number | 'ended';

/** How long a replica waits for the holder's answer before telling its client to retry, ms. */
const ANSWER_MS = 5000;

/**
 * Between the replica that changed a lease in the store (an extension, a stop) and the replica
 * holding its sandbox (crun: each replica's own machine), over ReplicaNotices: whether the holder
 * is up (its presence lock), telling it (`alacarte_leases`), and its answer once the sandbox
 * follows the store (`alacarte_lease_synced`), so that no replica answers 200 for a deadline its
 * sandbox has not taken, and a stop waits (a bounded while) for the sandbox's end. Nothing here is
 * the truth about money: a lost notice or answer only makes a request wait and be retried; the
 * store is read again on every side.
 */
export class HolderLink {
  private readonly notices: ReplicaNotices;
  private readonly log: Logger;
  private readonly answerMs: number;
  /** Requests waiting for a holder's answer, per lease id. */
  private readonly waiting = new Map<string, Set<(outcome: HolderOutcome) => void>>();
  private stops: Array<() => void> = [];

  constructor(options: { notices: ReplicaNotices; log: Logger; answerMs?: number }) {
    this.notices = options.notices;
    this.log = options.log;
    this.answerMs = options.answerMs ?? ANSWER_MS;
  }

  /** Whether other replicas share the store (PostgreSQL); nothing here does anything otherwise. */
  get shared(): boolean {
    return this.notices.shared;
  }

  /**
   * Starts hearing both sides: `changed(id)` when another replica changed a lease (this one may
   * hold it), `missed()` after the listening connection came back (notices may have been lost).
   */
  start(changed: (id: string) => void, missed: () => void): void {
    if (!this.notices.shared || this.stops.length > 0) return;
    this.stops = [
      this.notices.listen('alacarte_leases', changed, missed),
      this.notices.listen('alacarte_lease_synced', (payload) => this.heard(payload)),
    ];
    // Only now, listening, is this replica present for the others (not while it starts up).
    this.notices.announce();
  }

  /** Stops listening; requests still waiting time out as usual. */
  close(): void {
    for (const stop of this.stops) stop();
    this.stops = [];
  }

  /**
   * Whether the replica `replica` (a lease's `replica` column) is up and hearing notices: always
   * where nothing is shared, and for rows older than the column (''). Rejects with
   * StoreUnavailableError when the store cannot say.
   */
  async present(replica: string): Promise<boolean> {
    return !this.notices.shared || replica === '' || this.notices.isPresent(replica);
  }

  /**
   * Before any money moves for a lease another replica holds: that replica must be up and hearing
   * notices. Throws 503 `replica_unavailable` (Retry-After) when it is not, and `store_unavailable`
   * when the store cannot say. `replica` is the lease's `replica` column ('' for rows older than
   * it: not checked).
   */
  async requirePresent(replica: string): Promise<void> {
    if (await this.present(replica)) return;
    throw new AlacarteError(
      'replica_unavailable',
      "the replica holding this lease's sandbox is not running; nothing was charged or changed; try again once it is back",
      { headers: { 'retry-after': '5' } },
    );
  }

  /**
   * Tells the holder (replica `replica`, a lease's `replica` column) that lease `id` changed and
   * waits (at most answerMs) for it to say its sandbox follows: a deadline at least `want` (ms), or
   * ended (what every request then shows). True once it has; false at once when the holder is not
   * present (or the store cannot say), else when no answer came in time (the holder follows the
   * store at its next sweep, and at its restart). Never throws.
   */
  async ask(id: string, want: HolderOutcome, replica = ''): Promise<boolean> {
    let settle: (ok: boolean) => void = () => {};
    const answered = new Promise<boolean>((resolve) => {
      settle = resolve;
    });
    const hear = (outcome: HolderOutcome) => {
      if (outcome === 'ended' || (want !== 'ended' && outcome >= want)) settle(true);
    };
    let set = this.waiting.get(id);
    if (!set) {
      set = new Set();
      this.waiting.set(id, set);
    }
    set.add(hear);
    // Listening before anything is sent, so that no answer can come before it.
    const timer = setTimeout(() => settle(false), this.answerMs);
    try {
      // Neither awaited before the wait: a slow store counts against the same bound.
      void this.present(replica)
        .catch(() => false)
        .then(async (present) => present && (await this.tell(id)))
        .then((told) => told || settle(false));
      return await answered;
    } finally {
      clearTimeout(timer);
      set.delete(hear);
      if (set.size === 0) this.waiting.delete(id);
    }
  }

  /**
   * Tells the holder that lease `id` changed, without waiting for it (the reaper: each sandbox
   * ends at its deadline on its own). False when it could not be sent; never throws: a lost
   * notice is found by the holder's sweep.
   */
  async tell(id: string): Promise<boolean> {
    return this.notices.publish('alacarte_leases', id).then(
      () => true,
      (err: unknown) => {
        this.log.warn({ err: String(err), lease: id }, 'could not tell the replica holding the lease');
        return false;
      },
    );
  }

  /** The holder's side: says what lease `id`'s sandbox now has. Never throws. */
  async answer(id: string, outcome: HolderOutcome): Promise<void> {
    if (!this.notices.shared) return;
    await this.notices.publish('alacarte_lease_synced', `${id} ${outcome}`).catch((err: unknown) => {
      this.log.warn({ err: String(err), lease: id }, 'could not answer for the lease');
    });
  }

  private heard(payload: string): void {
    const [id, said] = payload.split(' ');
    const set = id === undefined ? undefined : this.waiting.get(id);
    if (!set || said === undefined) return;
    const outcome: HolderOutcome | undefined =
      said === 'ended' ? 'ended' : /^\d{1,16}$/.test(said) ? Number(said) : undefined;
    if (outcome === undefined) return;
    for (const hear of [...set]) hear(outcome);
  }
}
