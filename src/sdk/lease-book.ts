import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readFileIfExists, writeFileAtomic } from '../wallet/atomic-file.js';
import type { Lease } from './types.js';

/** What this machine keeps about a lease it rented: where, and the bearer credential. */
const entrySchema = z.object({
  id: z.string().min(1),
  url: z.string().min(1),
  token: z.string().min(1),
  offer: z.string(),
  image: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
  paid: z.number(),
  unit: z.string(),
  ports: z.record(z.string(), z.string()).default({}),
  state: z.string().default('running'),
});
export type LeaseBookEntry = z.infer<typeof entrySchema>;

/** The book entry of `lease` at node `url` (no trailing /v1/leases), with its bearer `token`. */
export function bookEntryOf(lease: Lease, url: string, token: string): LeaseBookEntry {
  return {
    id: lease.id,
    url,
    token,
    offer: lease.offer,
    image: lease.image,
    created_at: lease.created_at,
    expires_at: lease.expires_at,
    paid: lease.paid,
    unit: lease.unit,
    ports: lease.ports ?? {},
    state: lease.state,
  };
}

const fileSchema = z.object({ version: z.literal(1), leases: z.array(entrySchema) });

/**
 * `$ALACARTE_HOME/leases.json` (mode 0600): the credentials of the leases rented here. Written
 * atomically; each change re-reads the file, so concurrent CLI processes do not drop each other's
 * entries.
 */
export class LeaseBook {
  readonly path: string;

  constructor(home: string) {
    this.path = join(home, 'leases.json');
    mkdirSync(home, { recursive: true, mode: 0o700 });
  }

  list(): LeaseBookEntry[] {
    const text = readFileIfExists(this.path);
    if (text === undefined) return [];
    const parsed = fileSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`lease file ${this.path} is damaged`);
    return parsed.data.leases;
  }

  get(id: string): LeaseBookEntry | undefined {
    return this.list().find((l) => l.id === id);
  }

  put(entry: LeaseBookEntry): void {
    const others = this.list().filter((l) => l.id !== entry.id);
    this.write([...others, entry]);
  }

  update(id: string, fields: Partial<Omit<LeaseBookEntry, 'id' | 'token'>>): void {
    const leases = this.list().map((l) => (l.id === id ? { ...l, ...fields } : l));
    this.write(leases);
  }

  remove(id: string): void {
    this.write(this.list().filter((l) => l.id !== id));
  }

  private write(leases: LeaseBookEntry[]): void {
    writeFileAtomic(this.path, `${JSON.stringify({ version: 1, leases }, null, 1)}\n`);
  }
}
