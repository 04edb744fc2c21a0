import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** Connections one lease's ports relay at once, all its ports together. */
export const MAX_CONNECTIONS_PER_LEASE = 32;

/**
 * After the client's end of a connection (FIN), how long it may stay without a byte either way
 * before the relay is cut: the relay cannot pass the FIN on (busybox `nc` ends at its input's end,
 * before the answer), so a server that waits for the client to go (a WebSocket echo, a
 * keep-alive) would otherwise hold the connection, its relay process and the lease's slot for ever.
 */
export const IDLE_AFTER_CLIENT_END_MS = 10_000;

/**
 * How many relayed connections a lease may hold at once, shared by all its ports: each costs the
 * host a process outside the tenant's cgroup, and whoever reaches the port (not only the renter)
 * opens them. Past the bound a new connection is closed at once.
 */
export class ConnectionBudget {
  private open = 0;

  constructor(private readonly max: number = MAX_CONNECTIONS_PER_LEASE) {}

  /** Takes a slot, or answers false when all are taken. */
  take(): boolean {
    if (this.open >= this.max) return false;
    this.open++;
    return true;
  }

  release(): void {
    this.open = Math.max(0, this.open - 1);
  }
}

/**
 * The host uid and gid a relay runs as once inside the sandbox's network namespace: nobody, with no
 * groups and no capabilities. The relay handles the tenant's bytes and lives in the host's mount and
 * pid namespaces, so it must not be root there (nor the sandboxes' id, which owns the shared images).
 */
export const RELAY_ID = 65534;

/**
 * Makes one TCP port inside a sandbox reachable at 127.0.0.1:<host port>. The sandbox has only
 * loopback, so each connection gets a relay started in the sandbox's network namespace (busybox
 * `nsenter` + `nc`), connected to the host socket through pipes. An idle port costs one listening
 * socket in this process and nothing else; a connection costs one small static process, so the
 * lease's connections are bounded (ConnectionBudget). Data flows through pipes both ways, so a
 * peer that stops reading stops the other side instead of filling this process. Entering the
 * namespace needs root; nsenter drops to RELAY_ID right after, before `nc` runs.
 */
export class PortProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly sandboxPort: number,
    /** The host pid whose network namespace to enter, or undefined once the sandbox is gone. */
    private readonly netnsPid: () => number | undefined,
    private readonly busybox: string,
    /** Shared by all the ports of one lease. */
    private readonly budget: ConnectionBudget = new ConnectionBudget(),
  ) {}

  /** Listens on 127.0.0.1 (a given port, e.g. after a restart, or any free one) and returns the port. */
  listen(hostPort = 0): Promise<number> {
    const server = createServer({ allowHalfOpen: true }, (socket) => this.relay(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: hostPort, exclusive: true }, () => {
        server.off('error', reject);
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : hostPort);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private relay(socket: Socket): void {
    const pid = this.netnsPid();
    if (pid === undefined || !this.budget.take()) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    const child = openRelay(pid, this.sandboxPort, this.busybox);
    // The client may half-close after its request; the answer must still flow back, for as long
    // as bytes keep coming.
    socket.pipe(child.stdin, { end: false });
    socket.once('end', () => {
      socket.setTimeout(IDLE_AFTER_CLIENT_END_MS, () => socket.destroy());
    });
    child.stdout.pipe(socket);
    child.stdin.on('error', () => {});
    socket.on('error', () => {});
    child.on('error', () => socket.destroy());
    // The relay is gone (the connection inside ended, or nothing listened): the client's ends too
    // once the answer is written. Waiting for the client's own end instead held the slot for good
    // when the relay's input had closed under a write (the pipe from the socket is then undone and
    // the socket left paused: its end is never read).
    child.once('close', () => socket.end(() => socket.destroy()));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.budget.release();
      child.kill('SIGKILL');
    });
  }
}

/**
 * The relay's script, run by busybox's shell in the sandbox's network namespace as
 * `sh -c RELAY_SCRIPT relay <port>`: connects to the port on the loopback address its server
 * listens on and becomes busybox `nc` (exec: killing the relay ends the connection). IPv4
 * (127.0.0.1) when an IPv4 socket listens on the port (0.0.0.0 or 127.0.0.1, or nothing at all),
 * else IPv6 (::1) when an IPv6 one does: a server on `::1` only, as Node and Vite bind "localhost",
 * was unreachable. Which is read from the namespace's own /proc/net/tcp and tcp6 (LISTEN, state
 * 0A), as nobody; `busybox`: the path of busybox where the script runs.
 */
export function relayScript(busybox: string): string {
  const listening = (table: string) =>
    `${busybox} grep -q " [0-9A-F]*:$h [0-9A-F]*:0000 0A " /proc/net/${table} 2>/dev/null`;
  return [
    'h=$(printf %04X "$1")',
    `if ! ${listening('tcp')} && ${listening('tcp6')}; then a=::1; else a=127.0.0.1; fi`,
    `exec ${busybox} nc "$a" "$1"`,
  ].join('\n');
}

/**
 * Starts one relay to `<sandboxPort>` on the loopback inside the network namespace of host pid
 * `pid` (relayScript): busybox `nsenter` into that namespace only, dropping to RELAY_ID, then the
 * script and `nc`. Bytes written to its stdin reach the port, what the port answers comes out of
 * its stdout; it exits when either side closes (or at once when nothing listens). Kill it to cut
 * the connection.
 */
export function openRelay(
  pid: number,
  sandboxPort: number,
  busybox: string,
): ChildProcessByStdio<Writable, Readable, null> {
  return spawn(
    busybox,
    [
      'nsenter',
      // -F: exec the shell in place (no fork is needed for a network namespace), which execs nc,
      // so killing the child on close kills the relay itself, not a parent that would leave nc behind.
      '-F',
      `--net=/proc/${pid}/ns/net`,
      '-S',
      String(RELAY_ID),
      '-G',
      String(RELAY_ID),
      busybox,
      'sh',
      '-c',
      relayScript(busybox),
      'relay',
      String(sandboxPort),
    ],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
}
