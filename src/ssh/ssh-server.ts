import { type AddressInfo, createServer, type Server as NetServer, type Socket } from 'node:net';
import type { Connection } from 'ssh2';
import ssh2 from 'ssh2';
import { AlacarteError } from '../core/errors.js';
import type { ComputeDriver } from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';
import type { HostKey } from './host-key.js';
import { authenticate, type LoginDirectory } from './ssh-auth.js';
import { forward } from './ssh-forward.js';
import { leaseEndedLine, type SessionDriver, SshSession } from './ssh-session.js';

/**
 * The sessions of a lease whose sandbox another replica holds (crun replicas): whatever they ask
 * to run is refused with `lease_elsewhere`, which the session says on its stderr.
 */
const ELSEWHERE: SessionDriver = {
  spawn: async () => {
    throw elsewhere();
  },
  attach: async () => {
    throw elsewhere();
  },
  sftp: async () => {
    throw elsewhere();
  },
};

function elsewhere(): AlacarteError {
  return new AlacarteError('lease_elsewhere', 'the lease runs on another replica');
}

/** Bounds of the SSH server; every one is a count or a time in milliseconds. */
export interface SshLimits {
  /** TCP connections at once, logged in or not. */
  connections: number;
  /** Connections not yet logged in at once (a login takes a few round trips). */
  unauthenticated: number;
  /**
   * Of those, from one client address (an IPv6 one counted by its /64, what one host gets): so
   * that one client holding silent connections cannot take every slot and keep all renters out.
   */
  unauthenticatedPerAddress: number;
  /** Logged-in connections of one lease at once. */
  perLease: number;
  /** Channels (sessions and forwards) open at once on one connection. */
  channelsPerConnection: number;
  /** Refused authentication attempts before the connection is closed (OpenSSH's MaxAuthTries). */
  authTries: number;
  /** Time to log in before the connection is closed (OpenSSH's LoginGraceTime). */
  loginGraceMs: number;
  /** A logged-in connection with no channel open this long is closed. */
  idleMs: number;
  /** Keep-alive probes: a client silent for interval × count is gone. */
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** How often the leases of open connections are checked: an ended lease's sessions close then. */
  leaseCheckMs: number;
}

export const DEFAULT_SSH_LIMITS: SshLimits = {
  connections: 256,
  unauthenticated: 64,
  unauthenticatedPerAddress: 8,
  perLease: 8,
  channelsPerConnection: 10,
  authTries: 6,
  loginGraceMs: 30_000,
  idleMs: 15 * 60_000,
  keepaliveIntervalMs: 30_000,
  keepaliveCountMax: 4,
  leaseCheckMs: 1000,
};

/** What the SSH server asks of leases: logins, and which of them still run. */
export interface SshLeaseDirectory extends LoginDirectory {
  running(ids: readonly string[]): Promise<Set<string>>;
}

export interface SshServerOptions {
  hostKey: HostKey;
  leases: SshLeaseDirectory;
  driver: SessionDriver & Pick<ComputeDriver, 'connect'>;
  logger: Logger;
  limits?: Partial<SshLimits>;
  /**
   * Lines to tell open sessions before their lease ends (5 and 1 minute before, as terminals are
   * told: leases/deadline-notices.ts). Returns the unsubscribe function.
   */
  deadlineNotices?: { subscribe(leaseId: string, onNotice: (notice: { text: string }) => void): () => void };
}

/** One client connection and what it holds. */
interface Client {
  connection: Connection;
  leaseId: string | undefined;
  /** The lease's sandbox is another replica's: sessions say so, forwards are refused. */
  elsewhere: boolean;
  refusals: number;
  channels: number;
  sessions: Set<SshSession>;
  cuts: Set<() => void>;
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * The node's SSH server (API.md, SSH), on the ssh2 library: user = lease id, authenticated by one
 * of the lease's `ssh_keys` or its bearer credential as password (ssh-auth.ts); shells, commands
 * and sftp inside the lease's sandbox (ssh-session.ts); local port forwarding to the sandbox's own
 * ports (ssh-forward.ts). Remote forwarding, agent and X11 forwarding are refused. A lease that
 * ends closes its connections within `leaseCheckMs`, with a line saying so in each session.
 * Connections, logins, channels and idle time are bounded (SshLimits). Nothing secret is logged:
 * no password, no key, no user name that is not a logged-in lease id.
 */
export class SshServer {
  private readonly server: ssh2.Server;
  private readonly limits: SshLimits;
  private readonly clients = new Set<Client>();
  /** TCP connections not logged in yet, by remote address and port: each one's "logged in" call. */
  private readonly pending = new Map<string, () => void>();
  private readonly listener: NetServer;
  private checkTimer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(private readonly options: SshServerOptions) {
    this.limits = { ...DEFAULT_SSH_LIMITS, ...options.limits };
    // ssh2 is CommonJS: Node gives ESM only its default export.
    this.server = new ssh2.Server(
      {
        hostKeys: [options.hostKey.privateKey],
        ident: 'alacarte',
        keepaliveInterval: this.limits.keepaliveIntervalMs,
        keepaliveCountMax: this.limits.keepaliveCountMax,
      },
      (connection, info) => this.accept(connection, `${sourceOf(info.ip)}|${info.ip}|${info.port}`),
    );
    this.server.maxConnections = this.limits.connections;
    // Our own listener hands ssh2 the sockets: the login bounds then hold from the first byte on,
    // before a client has even sent its SSH identification.
    this.listener = createServer((socket) => this.admit(socket));
  }

  /** Listens on `host:port` (0 picks a free port) and answers the port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(port, host, () => {
        this.listener.off('error', reject);
        this.checkTimer = setInterval(() => void this.checkLeases(), this.limits.leaseCheckMs);
        this.checkTimer.unref();
        resolve((this.listener.address() as AddressInfo).port);
      });
    });
  }

  /** Stops listening and ends every connection (their sandboxes' processes are killed). */
  async close(): Promise<void> {
    clearInterval(this.checkTimer);
    for (const client of this.clients) this.drop(client, 'alacarte: the connection is closing');
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }

  /** Connections open now, for tests and metrics. */
  get connectionCount(): number {
    return this.clients.size;
  }

  /**
   * A new TCP connection: refused when too many are still logging in, cut when it has not logged in
   * within the grace time (whether or not it ever spoke SSH), else handed to ssh2.
   */
  private admit(socket: Socket): void {
    socket.on('error', () => undefined);
    if (this.pending.size >= this.limits.unauthenticated) {
      socket.destroy();
      return;
    }
    const source = sourceOf(socket.remoteAddress);
    let fromSource = 0;
    for (const k of this.pending.keys()) if (k.startsWith(`${source}|`)) fromSource++;
    if (fromSource >= this.limits.unauthenticatedPerAddress) {
      socket.destroy();
      return;
    }
    const key = `${source}|${socket.remoteAddress}|${socket.remotePort}`;
    const grace = setTimeout(() => socket.destroy(), this.limits.loginGraceMs);
    const loggedIn = () => {
      clearTimeout(grace);
      if (this.pending.get(key) === loggedIn) this.pending.delete(key);
    };
    this.pending.set(key, loggedIn);
    socket.once('close', loggedIn);
    this.server.injectSocket(socket);
  }

  private accept(connection: Connection, key: string): void {
    const client: Client = {
      connection,
      leaseId: undefined,
      elsewhere: false,
      refusals: 0,
      channels: 0,
      sessions: new Set(),
      cuts: new Set(),
      idleTimer: undefined,
    };
    connection.on('error', () => undefined);
    this.clients.add(client);
    connection.on('authentication', (ctx) => {
      // A lease's connections are counted at login: one too many is refused like a wrong key.
      const onLogin = (leaseId: string, elsewhere: boolean) => {
        if (this.countOf(leaseId) >= this.limits.perLease) return false;
        client.leaseId = leaseId;
        client.elsewhere = elsewhere;
        return true;
      };
      void authenticate(ctx, this.options.leases, onLogin).then(
        (leaseId) => {
          if (leaseId !== undefined) return;
          // A key query answered yes is not a refusal; everything else that did not log in is.
          const queried = ctx.method === 'publickey' && !ctx.signature;
          if (!queried && ctx.method !== 'none' && ++client.refusals >= this.limits.authTries)
            connection.end();
        },
        () => {
          ctx.reject();
          connection.end();
        },
      );
    });
    connection.on('ready', () => {
      this.pending.get(key)?.();
      const leaseId = client.leaseId;
      if (leaseId === undefined) {
        connection.end();
        return;
      }
      this.options.logger.info({ lease: leaseId }, 'ssh: logged in');
      this.idle(client);
      connection.on('session', (acceptSession, reject) => {
        if (!this.takeChannel(client)) return reject();
        let unsubscribe: (() => void) | undefined;
        const session: SshSession = new SshSession(
          acceptSession(),
          leaseId,
          client.elsewhere ? ELSEWHERE : this.options.driver,
          this.options.logger,
          () => {
            unsubscribe?.();
            client.sessions.delete(session);
            this.releaseChannel(client);
          },
          async () => !(await this.options.leases.running([leaseId])).has(leaseId),
        );
        client.sessions.add(session);
        unsubscribe = this.options.deadlineNotices?.subscribe(leaseId, (notice) =>
          session.notify(notice.text),
        );
      });
      connection.on('tcpip', (acceptForward, reject, info) => {
        if (client.elsewhere || !this.takeChannel(client)) return reject();
        let cut: (() => void) | undefined;
        const closed = () => {
          if (cut) client.cuts.delete(cut);
          this.releaseChannel(client);
        };
        void forward(acceptForward, reject, info, leaseId, this.options.driver, closed).then((c) => {
          if (!c) return this.releaseChannel(client);
          cut = c;
          client.cuts.add(c);
        });
      });
    });
    connection.once('close', () => {
      // The client went away: what its sessions run is hung up, as sshd does, not killed.
      this.drop(client);
      this.clients.delete(client);
    });
  }

  /** Logged-in connections of a lease, this one included. */
  private countOf(leaseId: string): number {
    let n = 0;
    for (const c of this.clients) if (c.leaseId === leaseId && c.connection.authenticated) n++;
    return n;
  }

  private takeChannel(client: Client): boolean {
    if (client.channels >= this.limits.channelsPerConnection) return false;
    client.channels++;
    this.idle(client);
    return true;
  }

  private releaseChannel(client: Client): void {
    client.channels = Math.max(0, client.channels - 1);
    this.idle(client);
  }

  /** (Re)arms the idle timer: it runs only while the connection has no channel open. */
  private idle(client: Client): void {
    clearTimeout(client.idleTimer);
    client.idleTimer = undefined;
    if (client.channels > 0) return;
    client.idleTimer = setTimeout(() => client.connection.end(), this.limits.idleMs);
    client.idleTimer.unref();
  }

  /**
   * Ends a connection's sessions and forwards: with `message` (the lease ended, the server closes)
   * what they run is killed after the message; without (the connection is gone) hung up.
   */
  private drop(client: Client, message?: string): void {
    clearTimeout(client.idleTimer);
    for (const session of client.sessions) {
      if (message) session.end(message);
      else session.hangUp();
    }
    for (const cut of client.cuts) cut();
    client.sessions.clear();
    client.cuts.clear();
    // Let the lines above and the exit statuses go out before the connection.
    setTimeout(() => client.connection.end(), message ? 200 : 0).unref();
  }

  /** Closes the connections of leases that have ended (stopped, expired, failed). */
  private async checkLeases(): Promise<void> {
    if (this.checking) return;
    // A lease held by another replica is never running here; its sessions end at once anyway.
    const ids = [
      ...new Set([...this.clients].flatMap((c) => (c.leaseId && !c.elsewhere ? [c.leaseId] : []))),
    ];
    if (ids.length === 0) return;
    this.checking = true;
    try {
      const running = await this.options.leases.running(ids);
      for (const client of this.clients) {
        if (client.leaseId && !client.elsewhere && !running.has(client.leaseId)) {
          this.options.logger.info({ lease: client.leaseId }, 'ssh: lease ended; closing its connection');
          this.drop(client, leaseEndedLine(client.leaseId));
          client.leaseId = undefined;
        }
      }
    } catch (err) {
      this.options.logger.warn({ err: String(err) }, 'ssh: could not check leases');
    } finally {
      this.checking = false;
    }
  }
}

/**
 * Who a connection counts against for unauthenticated slots: its IPv4 address (an IPv4-mapped IPv6
 * one too), or the /64 of an IPv6 address, since one host commonly holds a whole /64.
 */
export function sourceOf(address: string | undefined): string {
  if (!address) return '?';
  const mapped = /^::ffff:([0-9.]+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('%', 1)[0]?.split('::') ?? [];
  const left = head ? head.split(':') : [];
  const right = address.includes('::') && tail ? tail.split(':') : [];
  const groups = address.includes('::')
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || '0', 16).toString(16))
    .join(':')}::/64`;
}
