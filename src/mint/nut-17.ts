/**
 * NUT-17: WebSocket subscriptions, transport-free. A wallet subscribes over JSON-RPC 2.0 to mint
 * quotes, melt quotes or proof states; the mint answers OK, sends each object's current state, then
 * a notification whenever one changes (MintEvents). The WebSocket itself is http/nut-17-ws.ts.
 *
 * Everything a connection does runs through its own serial queue, so a subscription's first state
 * always goes out before any later change, and notifications leave in the order of the commits.
 * Every resource an outsider can grow is bounded: connections, subscriptions per connection, per
 * client address (over all its connections) and in total, filters per subscription, queued work
 * per connection (then the connection is closed).
 */
import { z } from 'zod';
import { MintError } from './errors.js';
import type { MintEvent, MintEvents } from './events.js';
import type { MintLogger } from './mint-core.js';
import type { CheckStateResponse, MeltQuoteResponse, MintQuoteResponse } from './types.js';

/** The subscription kinds of NUT-17 this mint serves. */
export type Nut17Kind = 'bolt11_mint_quote' | 'bolt11_melt_quote' | 'proof_state';

/** What the hub needs of the mint (Mint fits). `get*` ask Lightning for news, `stored*` do not. */
export interface Nut17Source {
  readonly events: Pick<MintEvents, 'listen'>;
  getMintQuote(id: string): Promise<MintQuoteResponse>;
  storedMintQuote(id: string): Promise<MintQuoteResponse | undefined>;
  getMeltQuote(id: string): Promise<MeltQuoteResponse>;
  storedMeltQuote(id: string): Promise<MeltQuoteResponse | undefined>;
  checkState(Ys: readonly string[]): Promise<CheckStateResponse>;
}

export interface Nut17Limits {
  /** open WebSocket connections at once */
  maxConnections: number;
  /** live subscriptions of one connection */
  maxSubscriptionsPerConnection: number;
  /**
   * live subscriptions of one client address over all its connections (the address as the
   * transport names it: http/nut-17-ws.ts counts an IPv6 one by its /64)
   */
  maxSubscriptionsPerAddress: number;
  /** live subscriptions of all connections together */
  maxSubscriptions: number;
  /** quote ids or Ys in one subscription */
  maxFilters: number;
  /** requests and notifications waiting on one connection; beyond, the connection is closed */
  maxQueued: number;
}

export const DEFAULT_NUT17_LIMITS: Nut17Limits = {
  maxConnections: 1000,
  maxSubscriptionsPerConnection: 100,
  maxSubscriptionsPerAddress: 300,
  maxSubscriptions: 10_000,
  maxFilters: 100,
  maxQueued: 1000,
};

/** What a connection needs of its socket. `send` takes one JSON text frame. */
export interface Nut17Socket {
  send(text: string): void;
  /** 1008 policy violation, 1013 try again later (RFC 6455) */
  close(code: number, reason: string): void;
}

/** JSON-RPC 2.0 error codes (and -32000, the first of the server-defined range: a limit). */
export const RpcError = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  limit: -32000,
} as const;

const QUOTE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const POINT = /^0[23][0-9a-fA-F]{64}$/;
const MAX_SUB_ID = 128;

const rpcId = z.union([z.number().int().safe(), z.string().max(64)]);
const envelopeSchema = z.object({
  jsonrpc: z.literal('2.0'),
  id: rpcId,
  method: z.string().max(64),
  params: z.unknown(),
});
const subscribeSchema = z.object({
  kind: z.string().max(64),
  subId: z.string().min(1).max(MAX_SUB_ID),
  filters: z.array(z.string().max(128)).min(1),
});
const unsubscribeSchema = z.object({ subId: z.string().min(1).max(MAX_SUB_ID) });

type RpcIdValue = z.infer<typeof rpcId> | null;

class RpcFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

interface Subscription {
  readonly connection: Nut17Connection;
  readonly subId: string;
  readonly kind: Nut17Kind;
  readonly filters: readonly string[];
  /** the last payload sent per filter, to send each state once */
  readonly lastSent: Map<string, string>;
}

/** Serves NUT-17 for one mint: the registry of every connection's subscriptions. */
export class Nut17Hub {
  readonly limits: Nut17Limits;
  /** `${kind}:${filter}` → the subscriptions watching it */
  private readonly index = new Map<string, Set<Subscription>>();
  private readonly connections = new Set<Nut17Connection>();
  private subscriptionCount = 0;
  /** client address → its live subscriptions; an address with none has no entry */
  private readonly perAddress = new Map<string, number>();
  private readonly stopListening: () => void;

  constructor(
    readonly source: Nut17Source,
    limits: Partial<Nut17Limits> = {},
    readonly log: MintLogger = { debug() {}, info() {}, warn() {}, error() {} },
  ) {
    this.limits = { ...DEFAULT_NUT17_LIMITS, ...limits };
    this.stopListening = source.events.listen((event) => this.onEvent(event));
  }

  /**
   * A new connection from client address `address` (its subscriptions count against that
   * address's bound; one key for all connections without one), or undefined when the hub is full
   * (the caller closes the socket, 1013).
   */
  connect(socket: Nut17Socket, address = ''): Nut17Connection | undefined {
    if (this.connections.size >= this.limits.maxConnections) return undefined;
    const connection = new Nut17Connection(this, socket, address);
    this.connections.add(connection);
    return connection;
  }

  /** Live subscriptions across all connections. */
  get size(): number {
    return this.subscriptionCount;
  }

  /** Stops listening to the mint and drops every subscription. */
  close(): void {
    this.stopListening();
    for (const connection of [...this.connections]) connection.closed();
  }

  /** Live subscriptions of client address `address`, over all its connections. */
  sizeOf(address: string): number {
    return this.perAddress.get(address) ?? 0;
  }

  /** @internal */
  register(sub: Subscription): void {
    this.subscriptionCount++;
    const address = sub.connection.address;
    this.perAddress.set(address, this.sizeOf(address) + 1);
    for (const filter of sub.filters) {
      const key = `${sub.kind}:${filter}`;
      let set = this.index.get(key);
      if (set === undefined) {
        set = new Set();
        this.index.set(key, set);
      }
      set.add(sub);
    }
  }

  /** @internal */
  unregister(sub: Subscription): void {
    this.subscriptionCount--;
    const address = sub.connection.address;
    const left = this.sizeOf(address) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
    for (const filter of sub.filters) {
      const key = `${sub.kind}:${filter}`;
      const set = this.index.get(key);
      if (set === undefined) continue;
      set.delete(sub);
      if (set.size === 0) this.index.delete(key);
    }
  }

  /** @internal */
  forget(connection: Nut17Connection): void {
    this.connections.delete(connection);
  }

  private onEvent(event: MintEvent): void {
    if (this.index.size === 0) return;
    if (event.kind === 'proof_state') {
      // One task per subscription, not per proof: a swap of many watched proofs is one batch.
      const bySub = new Map<Subscription, Array<[string, object]>>();
      for (const state of event.states) {
        for (const sub of this.index.get(`proof_state:${state.Y}`) ?? []) {
          let batch = bySub.get(sub);
          if (batch === undefined) {
            batch = [];
            bySub.set(sub, batch);
          }
          batch.push([state.Y, state]);
        }
      }
      for (const [sub, batch] of bySub) sub.connection.notify(sub, async () => batch);
      return;
    }
    const kind: Nut17Kind = event.kind === 'mint_quote' ? 'bolt11_mint_quote' : 'bolt11_melt_quote';
    for (const sub of this.index.get(`${kind}:${event.id}`) ?? []) {
      // Read when its turn comes: the state sent is the store's latest, never an older one.
      sub.connection.notify(sub, async () => {
        const payload =
          kind === 'bolt11_mint_quote'
            ? await this.source.storedMintQuote(event.id)
            : await this.source.storedMeltQuote(event.id);
        return payload === undefined ? [] : [[event.id, payload]];
      });
    }
  }
}

/** One WebSocket's side of NUT-17: feed it the text frames, it answers through its socket. */
export class Nut17Connection {
  private readonly subscriptions = new Map<string, Subscription>();
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private open = true;

  constructor(
    private readonly hub: Nut17Hub,
    private readonly socket: Nut17Socket,
    /** The client address its subscriptions count against (Nut17Limits.maxSubscriptionsPerAddress). */
    readonly address: string,
  ) {}

  /** A text frame from the wallet. Never throws: every fault is a JSON-RPC error answer. */
  receive(text: string): void {
    this.enqueue(() => this.handle(text));
  }

  /** A binary frame: NUT-17 speaks JSON text only. */
  receiveBinary(): void {
    this.enqueue(async () => this.error(null, RpcError.invalidRequest, 'binary frames are not JSON-RPC'));
  }

  /** The socket closed: every subscription of this connection ends. */
  closed(): void {
    if (!this.open) return;
    this.open = false;
    for (const sub of this.subscriptions.values()) this.hub.unregister(sub);
    this.subscriptions.clear();
    this.hub.forget(this);
  }

  /** @internal A change of what `sub` watches; `read` gives the [filter, payload] pairs to send. */
  notify(sub: Subscription, read: () => Promise<Array<[string, object]>>): void {
    this.enqueue(async () => {
      if (this.subscriptions.get(sub.subId) !== sub) return; // unsubscribed meanwhile
      for (const [filter, payload] of await read()) this.sendState(sub, filter, payload);
    });
  }

  private enqueue(task: () => Promise<void>): void {
    if (!this.open) return;
    if (this.queued >= this.hub.limits.maxQueued) {
      // A client that does not read its answers (or floods requests) is cut off, not buffered.
      this.socket.close(1008, 'too many pending messages');
      this.closed();
      return;
    }
    this.queued++;
    this.chain = this.chain
      .then(task)
      .catch((err: unknown) => this.hub.log.warn({ err }, 'nut-17: a task failed'))
      .finally(() => {
        this.queued--;
      });
  }

  private async handle(text: string): Promise<void> {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return this.error(null, RpcError.parse, 'parse error: not JSON');
    }
    const envelope = envelopeSchema.safeParse(message);
    if (!envelope.success) {
      const id = rpcId.safeParse((message as { id?: unknown } | null)?.id);
      return this.error(id.success ? id.data : null, RpcError.invalidRequest, describe(envelope.error));
    }
    const { id, method } = envelope.data;
    // 17.md calls params "serialized JSON"; wallets send the object itself. Take both.
    let params = envelope.data.params;
    if (typeof params === 'string') {
      try {
        params = JSON.parse(params);
      } catch {
        return this.error(id, RpcError.invalidParams, 'params: not JSON');
      }
    }
    try {
      if (method === 'subscribe') await this.subscribe(id, params);
      else if (method === 'unsubscribe') this.unsubscribe(id, params);
      else this.error(id, RpcError.methodNotFound, `method not found: ${method.slice(0, 64)}`);
    } catch (err) {
      if (err instanceof RpcFailure) return this.error(id, err.code, err.message);
      this.hub.log.warn({ err }, 'nut-17: a request failed');
      this.error(id, RpcError.internal, 'internal error');
    }
  }

  private async subscribe(id: RpcIdValue, raw: unknown): Promise<void> {
    const parsed = subscribeSchema.safeParse(raw);
    if (!parsed.success) throw new RpcFailure(RpcError.invalidParams, describe(parsed.error));
    const { subId } = parsed.data;
    const kind = parsed.data.kind;
    if (kind !== 'bolt11_mint_quote' && kind !== 'bolt11_melt_quote' && kind !== 'proof_state') {
      throw new RpcFailure(RpcError.invalidParams, `unsupported kind: ${kind}`);
    }
    const limits = this.hub.limits;
    const filters = [
      ...new Set(parsed.data.filters.map((f) => (kind === 'proof_state' ? f.toLowerCase() : f))),
    ];
    if (filters.length > limits.maxFilters) {
      throw new RpcFailure(RpcError.limit, `at most ${limits.maxFilters} filters per subscription`);
    }
    const pattern = kind === 'proof_state' ? POINT : QUOTE_ID;
    const bad = filters.find((f) => !pattern.test(f));
    if (bad !== undefined) {
      const what = kind === 'proof_state' ? 'a Y (compressed point, hex)' : 'a quote id';
      throw new RpcFailure(RpcError.invalidParams, `filter is not ${what}: ${bad.slice(0, 80)}`);
    }
    if (this.subscriptions.has(subId)) throw new RpcFailure(RpcError.invalidParams, 'subId already in use');
    if (this.subscriptions.size >= limits.maxSubscriptionsPerConnection) {
      throw new RpcFailure(
        RpcError.limit,
        `at most ${limits.maxSubscriptionsPerConnection} subscriptions per connection`,
      );
    }
    if (this.hub.sizeOf(this.address) >= limits.maxSubscriptionsPerAddress) {
      throw new RpcFailure(
        RpcError.limit,
        `at most ${limits.maxSubscriptionsPerAddress} subscriptions per client address, over all its connections`,
      );
    }
    if (this.hub.size >= limits.maxSubscriptions) {
      throw new RpcFailure(RpcError.limit, 'the mint serves too many subscriptions; try again later');
    }
    const sub: Subscription = { connection: this, subId, kind, filters, lastSent: new Map() };
    // Registered before the current states are read: a change committed meanwhile is queued behind
    // them, so the wallet never misses one (a repeat of the same state is not sent twice).
    this.subscriptions.set(subId, sub);
    this.hub.register(sub);
    let current: Array<[string, object]>;
    try {
      current = await this.currentStates(kind, filters);
    } catch (err) {
      this.subscriptions.delete(subId);
      this.hub.unregister(sub);
      if (err instanceof MintError) throw new RpcFailure(RpcError.invalidParams, err.message);
      throw err;
    }
    this.send({ jsonrpc: '2.0', result: { status: 'OK', subId }, id });
    for (const [filter, payload] of current) this.sendState(sub, filter, payload);
  }

  private unsubscribe(id: RpcIdValue, raw: unknown): void {
    const parsed = unsubscribeSchema.safeParse(raw);
    if (!parsed.success) throw new RpcFailure(RpcError.invalidParams, describe(parsed.error));
    const sub = this.subscriptions.get(parsed.data.subId);
    if (sub === undefined) throw new RpcFailure(RpcError.invalidParams, 'unknown subId');
    this.subscriptions.delete(sub.subId);
    this.hub.unregister(sub);
    this.send({ jsonrpc: '2.0', result: { status: 'OK', subId: sub.subId }, id });
  }

  /** The state of every filter now; an unknown quote is an error (MintError 404 from the source). */
  private async currentStates(kind: Nut17Kind, filters: readonly string[]): Promise<Array<[string, object]>> {
    const source = this.hub.source;
    if (kind === 'proof_state') {
      const { states } = await source.checkState(filters);
      return states.map((s) => [s.Y, s]);
    }
    const out: Array<[string, object]> = [];
    for (const id of filters) {
      // Asks Lightning for news of unpaid or pending quotes, as a NUT-04/05 lookup does.
      const payload =
        kind === 'bolt11_mint_quote' ? await source.getMintQuote(id) : await source.getMeltQuote(id);
      out.push([id, payload]);
    }
    return out;
  }

  private sendState(sub: Subscription, filter: string, payload: object): void {
    const text = JSON.stringify(payload);
    if (sub.lastSent.get(filter) === text) return;
    sub.lastSent.set(filter, text);
    this.send({ jsonrpc: '2.0', method: 'subscribe', params: { subId: sub.subId, payload } });
  }

  private error(id: RpcIdValue, code: number, message: string): void {
    this.send({ jsonrpc: '2.0', error: { code, message: message.slice(0, 300) }, id });
  }

  private send(message: object): void {
    if (this.open) this.socket.send(JSON.stringify(message));
  }
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.slice(0, 4).join('.')}: ` : '';
  return `invalid request: ${where}${issue?.message ?? 'malformed'}`.slice(0, 300);
}
