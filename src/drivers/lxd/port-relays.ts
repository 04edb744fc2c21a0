import { createServer, type Server } from 'node:net';
import type { SandboxRef } from '../compute-driver.js';
import type { DriverState } from './driver-state.js';
import { KEY, parsePorts } from './instance-record.js';
import type { LeaseIo } from './lease-io.js';

/**
 * Leases' declared ports, served on the host's loopback by this process: published at a start,
 * served again for a lease another replica started or a restarted node finds (list(), relayPort()),
 * and closed when the lease's instance goes.
 */
export class PortRelays {
  /** Host loopback servers of each lease's published ports (see publish()). */
  private readonly published = new Map<string, Server[]>();
  /** Per lease: sandbox port -> the loopback URL this process relays it on (see publish()). */
  private readonly relays = new Map<string, Map<number, string>>();
  /** Leases whose ports this process is starting to serve (servePorts()), so each is served once. */
  private readonly serving = new Map<string, Promise<void>>();

  constructor(
    private readonly s: DriverState,
    private readonly io: LeaseIo,
  ) {}

  /**
   * Serves a sandbox port on the host's loopback (at `hostPort`, or a free one): each connection
   * is relayed through connect() (the exec API, `nc` inside), so it works without a NIC and on any
   * cluster member. LXD's proxy device would do it inside LXD, but it needs the member's host to
   * be the node's. Resolves with the port listened on.
   */
  publish(leaseId: string, port: number, hostPort = 0): Promise<number> {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      this.io.connect({ leaseId }, port).then(
        (inside) => {
          // The client went while the relay was starting (an LXD exec takes a while): its close
          // has passed, and the relay would hold the lease's slot for as long as the port keeps it.
          if (socket.destroyed) {
            inside.destroy();
            return;
          }
          inside.on('error', () => socket.destroy());
          socket.pipe(inside);
          inside.pipe(socket);
          socket.once('close', () => inside.destroy());
          // Once what came from inside is written (its end ends the socket through the pipe).
          inside.once('close', () => socket.end(() => socket.destroy()));
        },
        () => socket.destroy(),
      );
    });
    // Held before it listens, so that an unpublish() meanwhile closes it too.
    const servers = this.published.get(leaseId) ?? [];
    servers.push(server);
    this.published.set(leaseId, servers);
    return new Promise((resolve, reject) => {
      server.once('error', (e) => {
        const held = this.published.get(leaseId);
        if (held?.includes(server)) held.splice(held.indexOf(server), 1);
        server.close();
        reject(e);
      });
      server.listen(hostPort, '127.0.0.1', () => {
        const listened = (server.address() as { port: number }).port;
        // Unpublished while it was starting to listen: nothing to record, and it is closed.
        if (this.published.get(leaseId)?.includes(server)) {
          const relays = this.relays.get(leaseId) ?? new Map<number, string>();
          relays.set(port, `http://127.0.0.1:${listened}`);
          this.relays.set(leaseId, relays);
        }
        resolve(listened);
      });
    });
  }

  /** Closes the lease's relays and forgets their URLs. */
  unpublish(leaseId: string): void {
    for (const server of this.published.get(leaseId) ?? []) server.close();
    this.published.delete(leaseId);
    this.relays.delete(leaseId);
  }

  /**
   * Serves those of `ports` (a sandbox's declared ports, as its start published them) that this
   * process does not relay yet: a sandbox another replica started, or one found after a restart.
   * Each goes on the host port its URL names when that is free here (a restarted node's earlier
   * answers stay valid), else on any free one (another replica on this host holds it). One at a
   * time per lease, so concurrent callers share the work. Failures are logged; the port stays
   * unserved until the next call.
   */
  servePorts(leaseId: string, ports: Record<number, string>): Promise<void> {
    const current = this.serving.get(leaseId);
    if (current) return current;
    const work = (async () => {
      for (const [port, url] of Object.entries(ports)) {
        if (this.relays.get(leaseId)?.has(Number(port))) continue;
        const named = Number(URL.canParse(url) ? new URL(url).port : 0);
        await this.publish(leaseId, Number(port), named)
          .catch(() => this.publish(leaseId, Number(port)))
          .catch((e: Error) =>
            this.s.logger.warn(`alacarte: port ${port} of ${leaseId} not served here: ${e.message}`),
          );
      }
      // Watched from now on: its relays go when its instance does (poll()).
      this.s.known.add(leaseId);
    })().finally(() => this.serving.delete(leaseId));
    this.serving.set(leaseId, work);
    return work;
  }

  /**
   * The loopback URL this process relays a running sandbox's declared `port` on, serving its ports
   * first when it does not yet (ComputeDriver.relayPort): a lease started through another replica
   * is reachable through this one at once, not only after its next list(). Undefined for a port
   * the sandbox did not declare; `lease_not_running` when its instance is gone.
   */
  async relayPort(sandbox: SandboxRef, port: number): Promise<string | undefined> {
    const relayed = this.relays.get(sandbox.leaseId)?.get(port);
    if (relayed) return relayed;
    const i = await this.s.running(sandbox.leaseId);
    const ports = parsePorts(i.config[KEY.ports]);
    if (!(port in ports)) return undefined;
    // Its own start is still publishing them: that start's URLs, once listening.
    if (!this.s.starting.has(sandbox.leaseId)) await this.servePorts(sandbox.leaseId, ports);
    return this.relays.get(sandbox.leaseId)?.get(port);
  }

  /** Closes the relays of every lease (the driver's close()). */
  unpublishAll(): void {
    for (const leaseId of [...this.published.keys()]) this.unpublish(leaseId);
  }
}
