import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** What the fake backend knows of an invoice it issued. Times are ms since the epoch. */
export interface JournalInvoice {
  preimage: string;
  createdAt: number;
  expiresAt: number;
  /** When this node paid its own invoice (internal settlement). */
  paidAt: number | undefined;
}

type Line =
  | { h: string; p: string; c: number; e: number }
  | {
      h: string;
      paid: number;
    };

const HEX32 = /^[0-9a-f]{64}$/;

/**
 * The fake Lightning backend's invoices on disk, so that they outlive a restart as a real node's
 * do: an invoice paid before a crash is still paid after it (an L402 payer retrying with its
 * preimage is not told the invoice expired). One JSON line per invoice issued and per internal
 * settlement, appended (a kill -9 loses at most the line being written); rewritten with what is
 * remembered when it has grown to twice that. The fake moves no money: its preimages are no secret
 * worth more than the demo's, and a real backend keeps them in its own store too.
 */
export class FakeJournal {
  private lines = 0;
  /** The file ends in a torn line (a write cut short): the next line starts on a line of its own. */
  private torn = false;

  constructor(
    private readonly path: string,
    /** Invoices kept (the fake's `maxEntries`): the file is compacted beyond twice this. */
    private readonly maxEntries: number,
  ) {}

  /** Whether the file holds more than twice the invoices kept: time to `rewrite` it. */
  get tooLong(): boolean {
    return this.lines > 2 * this.maxEntries;
  }

  /** The invoices on disk, oldest first; unreadable lines (a torn last write) are skipped. */
  load(): Map<string, JournalInvoice> {
    const invoices = new Map<string, JournalInvoice>();
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return invoices;
    }
    this.torn = text.length > 0 && !text.endsWith('\n');
    for (const raw of text.split('\n')) {
      if (raw === '') continue;
      this.lines++;
      let line: Partial<Line> & Record<string, unknown>;
      try {
        line = JSON.parse(raw) as Partial<Line> & Record<string, unknown>;
      } catch {
        continue;
      }
      if (typeof line.h !== 'string' || !HEX32.test(line.h)) continue;
      if (typeof line.paid === 'number') {
        const known = invoices.get(line.h);
        if (known) known.paidAt = line.paid;
      } else if (
        typeof line.p === 'string' &&
        HEX32.test(line.p) &&
        typeof line.c === 'number' &&
        typeof line.e === 'number'
      ) {
        invoices.delete(line.h);
        invoices.set(line.h, { preimage: line.p, createdAt: line.c, expiresAt: line.e, paidAt: undefined });
        if (invoices.size > this.maxEntries) invoices.delete(invoices.keys().next().value as string);
      }
    }
    if (this.lines > 2 * this.maxEntries) this.rewrite(invoices);
    return invoices;
  }

  issued(paymentHash: string, invoice: JournalInvoice): void {
    this.append({ h: paymentHash, p: invoice.preimage, c: invoice.createdAt, e: invoice.expiresAt });
  }

  paid(paymentHash: string, at: number): void {
    this.append({ h: paymentHash, paid: at });
  }

  /** Replaces the file with `invoices` (write + rename: a crash leaves the old or the new one). */
  rewrite(invoices: ReadonlyMap<string, JournalInvoice>): void {
    const out: string[] = [];
    for (const [h, i] of invoices) {
      out.push(JSON.stringify({ h, p: i.preimage, c: i.createdAt, e: i.expiresAt }));
      if (i.paidAt !== undefined) out.push(JSON.stringify({ h, paid: i.paidAt }));
    }
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, out.length ? `${out.join('\n')}\n` : '', { mode: 0o600 });
    renameSync(tmp, this.path);
    this.lines = out.length;
    this.torn = false;
  }

  private append(line: Line): void {
    if (this.lines === 0) mkdirSync(dirname(this.path), { recursive: true });
    appendFileSync(this.path, `${this.torn ? '\n' : ''}${JSON.stringify(line)}\n`, { mode: 0o600 });
    this.torn = false;
    this.lines++;
  }
}
