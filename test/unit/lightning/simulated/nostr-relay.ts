import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

interface NostrEvent {
  id: string;
  pubkey: string;
  created_at: number;
  kind: number;
  tags: string[][];
  content: string;
  sig: string;
}

type Filter = Record<string, unknown>;

/**
 * A small NIP-01 relay for tests: EVENT (answered with OK), REQ (stored matches, EOSE, then live
 * ones), CLOSE. Ephemeral kinds (20000–29999, where NIP-47 requests, responses and notifications
 * live) are only forwarded, never stored, as real relays do. Signatures are not checked: the
 * clients in the test check what they receive.
 */
export class NostrRelay {
  private server: WebSocketServer | undefined;
  private readonly stored: NostrEvent[] = [];
  /** Kind and tags of every event published, for tests to see what went over the wire. */
  readonly seen: Array<{ kind: number; tags: string[][] }> = [];
  private readonly subs = new Map<WebSocket, Map<string, Filter[]>>();

  async start(): Promise<string> {
    this.server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => this.server?.once('listening', () => resolve()));
    this.server.on('connection', (socket) => {
      this.subs.set(socket, new Map());
      socket.on('message', (data) => this.onMessage(socket, String(data)));
      socket.on('close', () => this.subs.delete(socket));
    });
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.subs.keys()) socket.terminate();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private onMessage(socket: WebSocket, text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(message)) return;
    const [type, ...rest] = message as [string, ...unknown[]];
    if (type === 'EVENT') {
      const event = rest[0] as NostrEvent;
      socket.send(JSON.stringify(['OK', event.id, true, '']));
      this.seen.push({ kind: event.kind, tags: event.tags });
      if (event.kind < 20_000 || event.kind >= 30_000) this.stored.push(event);
      for (const [other, subs] of this.subs) {
        for (const [id, filters] of subs) {
          if (filters.some((f) => matches(f, event))) other.send(JSON.stringify(['EVENT', id, event]));
        }
      }
    } else if (type === 'REQ') {
      const [id, ...filters] = rest as [string, ...Filter[]];
      this.subs.get(socket)?.set(id, filters);
      for (const event of this.stored) {
        if (filters.some((f) => matches(f, event))) socket.send(JSON.stringify(['EVENT', id, event]));
      }
      socket.send(JSON.stringify(['EOSE', id]));
    } else if (type === 'CLOSE') {
      this.subs.get(socket)?.delete(String(rest[0]));
    }
  }
}

function matches(filter: Filter, event: NostrEvent): boolean {
  const list = (key: string) => filter[key] as unknown[] | undefined;
  if (list('ids') && !list('ids')?.includes(event.id)) return false;
  if (list('authors') && !list('authors')?.includes(event.pubkey)) return false;
  if (list('kinds') && !list('kinds')?.includes(event.kind)) return false;
  if (typeof filter.since === 'number' && event.created_at < filter.since) return false;
  if (typeof filter.until === 'number' && event.created_at > filter.until) return false;
  for (const key of Object.keys(filter)) {
    if (!key.startsWith('#')) continue;
    const wanted = filter[key] as string[];
    if (!event.tags.some((t) => t[0] === key.slice(1) && wanted.includes(t[1] ?? ''))) return false;
  }
  return true;
}
