/** How long before a lease's deadline its open terminals are told, in milliseconds: 5 and 1 minute. */
export const DEFAULT_NOTICE_OFFSETS_MS: readonly number[] = [5 * 60_000, 60_000];

/** What a subscriber is told, once per offset, before a lease's deadline. */
export interface DeadlineNotice {
  leaseId: string;
  expiresAt: Date;
  /** Whole seconds from now to the deadline (about the offset that fired). */
  secondsLeft: number;
  /** One line for a terminal, CRLF-framed, e.g. "\r\n[alacarte] this lease ends in 5 minutes…\r\n". */
  text: string;
}

export interface DeadlineNoticesOptions {
  /** A running lease's deadline, or undefined when it has none (unknown, ended). */
  deadlineOf: (leaseId: string) => Promise<Date | undefined>;
  clock?: () => Date;
  /** Offsets before the deadline at which to tell, in ms; DEFAULT_NOTICE_OFFSETS_MS by default. */
  offsetsMs?: readonly number[];
  /** Called when looking up a deadline fails; nothing is told then. */
  onError?: (err: unknown) => void;
}

/** Node timers hold at most 2^31 - 1 ms; a lease may be sold for 30 days. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Watched {
  subscribers: Set<(notice: DeadlineNotice) => void>;
  deadline: Date | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Bumped on every re-arm, so a lookup that finishes late does not arm an old deadline. */
  generation: number;
}

/**
 * Tells whoever holds a lease's terminals (attach sessions, SSH sessions) that the lease is about
 * to end: one notice per offset (5 and 1 minute before the deadline by default), and again after
 * an extension moves the deadline (`deadlineChanged`). Offsets already past when a lease is
 * watched are skipped. Timers exist only while a lease has subscribers; nothing is polled.
 */
export class DeadlineNotices {
  private readonly watched = new Map<string, Watched>();
  private readonly now: () => Date;
  private readonly offsets: readonly number[];

  constructor(private readonly options: DeadlineNoticesOptions) {
    this.now = options.clock ?? (() => new Date());
    this.offsets = [...(options.offsetsMs ?? DEFAULT_NOTICE_OFFSETS_MS)].sort((a, b) => b - a);
  }

  /** Calls `onNotice` before the lease's deadline (see the class). Returns the unsubscribe function. */
  subscribe(leaseId: string, onNotice: (notice: DeadlineNotice) => void): () => void {
    let w = this.watched.get(leaseId);
    if (!w) {
      w = { subscribers: new Set(), deadline: undefined, timer: undefined, generation: 0 };
      this.watched.set(leaseId, w);
      this.deadlineChanged(leaseId);
    }
    // Each subscription its own entry, even for the same function.
    const entry = (notice: DeadlineNotice) => onNotice(notice);
    w.subscribers.add(entry);
    return () => {
      const current = this.watched.get(leaseId);
      if (!current) return;
      current.subscribers.delete(entry);
      if (current.subscribers.size === 0) {
        clearTimeout(current.timer);
        this.watched.delete(leaseId);
      }
    };
  }

  /**
   * The lease's deadline moved (an extension): notices are armed again for the new one. Cheap
   * when nobody watches the lease. `deadline` spares a lookup when the caller knows it.
   */
  deadlineChanged(leaseId: string, deadline?: Date): void {
    const w = this.watched.get(leaseId);
    if (!w) return;
    const generation = ++w.generation;
    clearTimeout(w.timer);
    w.timer = undefined;
    const arm = (d: Date | undefined) => {
      if (this.watched.get(leaseId) !== w || w.generation !== generation) return;
      w.deadline = d;
      this.schedule(leaseId, w, this.now().getTime());
    };
    if (deadline) arm(deadline);
    else this.options.deadlineOf(leaseId).then(arm, (err: unknown) => this.options.onError?.(err));
  }

  /** How many leases have subscribers (for tests and metrics). */
  get size(): number {
    return this.watched.size;
  }

  /** Arms the timer for the next offset after `after` (ms since the epoch). */
  private schedule(leaseId: string, w: Watched, after: number): void {
    if (!w.deadline) return;
    const deadline = w.deadline.getTime();
    const next = this.offsets.map((o) => deadline - o).find((at) => at > after);
    if (next === undefined) return;
    const wait = next - this.now().getTime();
    w.timer = setTimeout(
      () => {
        w.timer = undefined;
        if (wait > MAX_TIMER_MS) return this.schedule(leaseId, w, after);
        this.tell(leaseId, w, deadline);
        this.schedule(leaseId, w, next);
      },
      Math.max(0, Math.min(wait, MAX_TIMER_MS)),
    );
    w.timer.unref();
  }

  private tell(leaseId: string, w: Watched, deadline: number): void {
    const secondsLeft = Math.max(0, Math.round((deadline - this.now().getTime()) / 1000));
    const expiresAt = new Date(deadline);
    const notice: DeadlineNotice = {
      leaseId,
      expiresAt,
      secondsLeft,
      text: noticeText(leaseId, expiresAt, secondsLeft),
    };
    for (const s of [...w.subscribers]) {
      try {
        s(notice);
      } catch (err) {
        this.options.onError?.(err);
      }
    }
  }
}

/** The line a terminal shows when its shell ended with the lease (expired, stopped), CRLF-framed. */
export function endedText(leaseId: string): string {
  return `\r\n[alacarte] lease ${leaseId} has ended; closing the terminal.\r\n`;
}

/** The line a terminal shows, e.g. "[alacarte] this lease ends in 5 minutes (21:40 UTC); …". */
export function noticeText(leaseId: string, expiresAt: Date, secondsLeft: number): string {
  const minutes = Math.round(secondsLeft / 60);
  const left =
    secondsLeft >= 90 ? `${minutes} minutes` : secondsLeft >= 60 ? '1 minute' : `${secondsLeft} seconds`;
  const at = expiresAt.toISOString().slice(11, 19);
  return `\r\n[alacarte] this lease ends in ${left} (${at} UTC); to keep it: alacarte extend ${leaseId} --for 1h\r\n`;
}
