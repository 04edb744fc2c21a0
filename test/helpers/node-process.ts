import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { expect } from 'vitest';
import { CrunDriver } from '../../src/drivers/crun/crun-driver.js';
import { type ServedNode, serveNode, tempDir } from './cli.js';
import { expectBalanced, freePort, ledgerOf, postJson } from './lease-node.js';

/**
 * The offer the crash and replica tests sell (config-file form): a quarter core, 60 sat an hour
 * (1 sat a minute), so a price and a refund are easy to read.
 */
export const QUARTER_OFFER = {
  id: 'quarter',
  vcpu: 0.25,
  memory_mib: 64,
  pids: 64,
  disk_mib: 16,
  price: { amount_per_hour: 60, unit: 'sat' },
} as const;

export interface NodeProcessOptions {
  /** Prefix of the temporary data directory's name. */
  prefix: string;
  /** The node's config file (`--config`), written into the data directory as JSON. */
  config: Record<string, unknown>;
  /** Extra environment of the node's process (e.g. ALACARTE_OPERATOR_TOKEN). */
  env?: NodeJS.ProcessEnv;
  /** The HTTP port (default: a free one, picked on the first start). */
  port?: number;
}

/**
 * The built node (`node dist/cli/main.js serve`) on crun as a child process, with a data directory
 * that outlives the process: tests kill it with SIGKILL and start it again on the same data
 * directory and port (so the mint URL in tokens stays the same), then check what crun really runs.
 */
export class NodeProcess {
  readonly dataDir: string;
  /** The crun driver's runtime directory (lease id links → sandbox directories). */
  readonly runtimeDir: string;
  /** The serve command's driver names its instance after its runtime directory (CrunDriverOptions.instance). */
  readonly instance: string;
  readonly configFile: string;
  /** The process started last, until `kill` (or a test) clears it. */
  server: ServedNode | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private port = 0;
  private sshPort = 0;

  constructor(options: NodeProcessOptions) {
    this.dataDir = tempDir(options.prefix);
    this.runtimeDir = join(this.dataDir, 'sandboxes');
    this.instance = `a${createHash('sha256').update(this.runtimeDir).digest('hex').slice(0, 8)}`;
    this.configFile = join(this.dataDir, 'test-config.json');
    this.env = options.env ?? {};
    this.port = options.port ?? 0;
    writeFileSync(this.configFile, JSON.stringify(options.config));
  }

  /**
   * This process's own address (the banner shows the public URL, which replicas behind one load
   * balancer share): what a test uses to reach this very replica.
   */
  get localUrl(): string {
    if (this.port === 0) throw new Error('not started yet');
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the node and waits for its banner; the ports are picked on the first start and kept. */
  async start(): Promise<ServedNode> {
    if (this.port === 0) this.port = await freePort();
    if (this.sshPort === 0) this.sshPort = await freePort();
    this.server = await serveNode({
      dataDir: this.dataDir,
      args: ['--port', String(this.port), '--ssh-port', String(this.sshPort), '--config', this.configFile],
      env: this.env,
    });
    return this.server;
  }

  /**
   * Copies what replicas share as files from another node's data directory (README "Scaling out"):
   * the node key and the mint seed. Call before this one's first start.
   */
  shareKeysWith(first: NodeProcess): void {
    for (const file of ['node.key', 'mint.seed'])
      copyFileSync(join(first.dataDir, file), join(this.dataDir, file));
  }

  /** kill -9 of the running node (if any), resolved once it has exited. */
  async kill(): Promise<void> {
    await this.server?.stop('SIGKILL');
    this.server = undefined;
  }

  /**
   * Lease ids whose sandbox crun really runs, read from crun itself. The driver starts sandboxes
   * ahead in a pool and links each lease id (in its runtime dir) to the container it got; unlinked
   * pool containers run no tenant code.
   */
  runningSandboxes(): string[] {
    const out = execFileSync(
      'crun',
      ['--root', `/run/alacarte-${this.instance}`, 'list', '--format', 'json'],
      {
        encoding: 'utf8',
      },
    );
    const list = JSON.parse(out.trim() || '[]') as Array<{ id: string; status: string }>;
    const running = new Set(list.filter((c) => c.status === 'running').map((c) => c.id));
    // A link listed may be gone by the time it is read: the node removes ended sandboxes meanwhile.
    const target = (name: string): string | undefined => {
      try {
        return readlinkSync(join(this.runtimeDir, name));
      } catch {
        return undefined;
      }
    };
    return readdirSync(this.runtimeDir, { withFileTypes: true })
      .filter((e) => {
        const name = e.isSymbolicLink() ? target(e.name) : undefined;
        return name !== undefined && running.has(`${this.instance}-${name}`);
      })
      .map((e) => e.name);
  }

  /**
   * For afterAll: kills the node, stops every sandbox left on its runtime directory (a driver on the
   * same directory stops them all), removes the runtime's state directory of this instance once
   * nothing runs in it, and removes the data directory.
   */
  async cleanup(): Promise<void> {
    await this.kill();
    if (existsSync(this.runtimeDir)) {
      const driver = await CrunDriver.create({
        runtimeDir: this.runtimeDir,
        imagesDir: join(this.dataDir, 'images'),
        warmLayers: 0,
      });
      for (const s of await driver.list()) await driver.stop(s);
      await driver.close();
      if (this.runningSandboxes().length === 0) {
        rmSync(`/run/alacarte-${this.instance}`, { recursive: true, force: true });
      }
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export interface ReplicasOptions extends Omit<NodeProcessOptions, 'port'> {
  count: number;
  /** The shared store (`ALACARTE_STORE_URL`). */
  storeUrl: string;
  /** Gets every replica as soon as it is made, so afterAll cleans up after a failed start too. */
  into?: NodeProcess[];
}

/**
 * `count` replicas of one node on one store, as behind a load balancer: one public URL (the first
 * replica's; the mint URL in tokens), the node key and the mint seed copied from the first
 * replica's data directory, each with its own data directory and sandboxes. Started in order (the
 * first makes the keys); resolves once all answer.
 */
export async function startReplicas(options: ReplicasOptions): Promise<NodeProcess[]> {
  const firstPort = await freePort();
  const config = { publicUrl: `http://127.0.0.1:${firstPort}`, ...options.config };
  const env = { ...options.env, ALACARTE_STORE_URL: options.storeUrl };
  const replicas = Array.from(
    { length: options.count },
    (_, i) =>
      new NodeProcess({
        prefix: `${options.prefix}${i}`,
        config,
        env,
        ...(i === 0 ? { port: firstPort } : {}),
      }),
  );
  options.into?.push(...replicas);
  const [first, ...rest] = replicas;
  if (!first) return replicas;
  await first.start();
  for (const replica of rest) replica.shareKeysWith(first);
  await Promise.all(rest.map((r) => r.start()));
  return replicas;
}

/** An answer of postJson, or the connection cut by a kill. */
export type BurstOutcome = Awaited<ReturnType<typeof postJson>> | 'connection lost';

/**
 * Sends every request at once and kills `victim` with SIGKILL as soon as `killNow(answers)` holds
 * (it sees the answers so far), or once all have settled; resolves, after the process has exited,
 * with each request's answer or `'connection lost'`. The crash tests' burst: some answered, the
 * rest cut off somewhere between payment and answer.
 */
export async function killMidBurst(
  victim: NodeProcess,
  requests: ReadonlyArray<() => Promise<Awaited<ReturnType<typeof postJson>>>>,
  killNow: (answered: ReadonlyArray<Awaited<ReturnType<typeof postJson>>>, index: number) => boolean,
): Promise<BurstOutcome[]> {
  const child = victim.server?.process;
  if (!child) throw new Error('the victim is not running');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const answered: Array<Awaited<ReturnType<typeof postJson>>> = [];
  const outcomes = await Promise.all(
    requests.map((send, i) =>
      send().then(
        (r) => {
          answered.push(r);
          if (killNow(answered, i)) child.kill('SIGKILL');
          return r;
        },
        () => 'connection lost' as const,
      ),
    ),
  );
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
  victim.server = undefined;
  return outcomes;
}

/**
 * The crash tests' restart: the node started again on the same data directory and port (the mint
 * URL in the tokens is the same), with a wallet of its mint to receive the refunds and change that
 * its answers hand back.
 */
export async function restartAfterKill(
  victim: NodeProcess,
): Promise<{ server: ServedNode; url: string; receiver: Wallet }> {
  const server = await victim.start();
  const receiver = new Wallet(server.mintUrl, { unit: 'sat' });
  await receiver.loadMint();
  return { server, url: server.url, receiver };
}

/**
 * The crash tests' end: crun runs exactly the sandboxes of `running` (lease id → credential) and
 * nothing unpaid; each is stopped (DELETE, 200), after which crun runs none, the books (read with
 * the operator token) still balance and the node ends on SIGTERM with status 0.
 */
export async function stopAllAndCheck(
  victim: NodeProcess,
  running: ReadonlyMap<string, string>,
  operatorToken: string,
): Promise<void> {
  const server = victim.server;
  if (!server) throw new Error('the node is not running');
  // No sandbox without a paid, running lease, and no running lease without its sandbox.
  expect(new Set(victim.runningSandboxes())).toEqual(new Set(running.keys()));
  for (const [id, credential] of running) {
    const stop = await postJson(
      `${server.url}/v1/leases/${id}`,
      undefined,
      { authorization: `Bearer ${credential}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
  }
  expect(victim.runningSandboxes()).toEqual([]);
  expect(expectBalanced(await ledgerOf(server.url, operatorToken))).toEqual([]);
  expect(await server.stop('SIGTERM')).toBe(0);
}
