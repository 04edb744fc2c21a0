import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LayerPool } from '../../src/drivers/crun/layer-pool.js';
import { mountsUnder } from '../../src/drivers/crun/mounts.js';
import { CLI } from '../helpers/cli.js';
import { expectBalanced, ledgerOf, postJson, tokens } from '../helpers/lease-node.js';
import { NodeProcess, QUARTER_OFFER } from '../helpers/node-process.js';
import { waitFor } from './drivers/compute-driver.contract.js';
import { crunSkipReason } from './drivers/crun-target.js';

/**
 * `alacarte serve` (crun) ended with SIGTERM: the node stops taking requests, the sandboxes of
 * running leases keep running (they are paid; the next node on the data directory picks them up,
 * src/drivers/crun/README.md), and everything it made ahead for nobody (the pool's sandboxes, ready
 * or in the making, refills that a rent racing the signal set off included) is removed: no
 * container, no mount, no directory. Reported: a pool sandbox's overlay and layer tmpfs left
 * mounted under the data directory after SIGTERM.
 */
const OPERATOR = 'operator-token-for-sigterm-tests-01';
// Two disk sizes: two pools of three, so that a SIGTERM soon after the banner finds makings under way.
const OFFERS = [QUARTER_OFFER, { ...QUARTER_OFFER, id: 'quarter-32', disk_mib: 32 }];
const POOL = 3;
const FULL_POOL = POOL * OFFERS.length;
const body = { offer: 'quarter', seconds: 7200, image: 'busybox', command: ['sleep', '7200'] };

const nodeProcess = new NodeProcess({
  prefix: 'sigterm',
  config: { offers: OFFERS, pool: { size: POOL } },
  env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
});
afterAll(() => nodeProcess.cleanup());

const stateDir = () => `/run/alacarte-${nodeProcess.instance}`;

/** Containers crun knows for the node's instance: name (without the instance) → status. */
function containers(): Map<string, string> {
  if (!existsSync(stateDir())) return new Map();
  const out = execFileSync('crun', ['--root', stateDir(), 'list', '--format', 'json'], { encoding: 'utf8' });
  const list = JSON.parse(out.trim() || '[]') as Array<{ id: string; status: string }>;
  return new Map(list.map((c) => [c.id.slice(nodeProcess.instance.length + 1), c.status]));
}

/** Lease id → the sandbox (container name) its link in the runtime directory names. */
function leaseLinks(): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(nodeProcess.runtimeDir, { withFileTypes: true })) {
    if (!e.isSymbolicLink()) continue;
    try {
      out.set(e.name, readlinkSync(join(nodeProcess.runtimeDir, e.name)));
    } catch {
      // removed meanwhile (a stop's removal runs beside this read)
    }
  }
  return out;
}

/** Sandbox directories (`w<hex>`) in the runtime directory, and in the run state (run-state.ts). */
function sandboxDirs(): string[] {
  const runState = `${stateDir()}-run`;
  return [
    ...readdirSync(nodeProcess.runtimeDir).filter((n) => LayerPool.isPoolName(n)),
    ...(existsSync(runState) ? readdirSync(runState).filter((n) => LayerPool.isPoolName(n)) : []),
  ];
}

/**
 * What the node left that no lease holds: mount points under the data directory, containers and
 * sandbox directories (runtime directory, run state) not of a leased sandbox. Empty after a clean
 * stop; `leased` is every sandbox a lease link names.
 */
function leftFor(leased: ReadonlySet<string>): { mounts: string[]; containers: string[]; dirs: string[] } {
  const sandboxes = realpathSync(nodeProcess.runtimeDir);
  const ofLease = (path: string) => [...leased].some((name) => path.startsWith(`${join(sandboxes, name)}/`));
  return {
    mounts: mountsUnder(realpathSync(nodeProcess.dataDir)).filter((m) => !ofLease(m)),
    containers: [...containers().keys()].filter((n) => !leased.has(n)),
    dirs: [...new Set(sandboxDirs())].filter((n) => !leased.has(n)),
  };
}

/**
 * Resolves once a sandbox directory the node is making ahead appears (polled every 5 ms): one that
 * no lease links to.
 */
async function untilMakingBegins(): Promise<void> {
  const leased = new Set(leaseLinks().values());
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    if (readdirSync(nodeProcess.runtimeDir).some((n) => LayerPool.isPoolName(n) && !leased.has(n))) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('no sandbox was made ahead');
}

/** Waits until the node's pools hold all they aim for: that many containers that no lease holds run. */
async function untilPoolFull(leased: ReadonlySet<string>): Promise<void> {
  const full = async () =>
    [...containers()].filter(([n, s]) => s === 'running' && !leased.has(n)).length >= FULL_POOL;
  expect(await waitFor(full, 120_000), JSON.stringify([...containers()])).toBe(true);
}

/** SIGTERM to the running node; resolves with its exit code and what it printed. */
async function sigterm(): Promise<{ code: number | null; output: string }> {
  const server = nodeProcess.server!;
  const code = await server.stop('SIGTERM');
  nodeProcess.server = undefined;
  return { code, output: server.output() };
}

/** A clean stop's output: said so, and no error or stack trace on the way out. */
function expectCleanStop(stopped: { code: number | null; output: string }): void {
  expect(stopped.code, stopped.output).toBe(0);
  expect(stopped.output).toContain('alacarte: stopped');
  expect(stopped.output).not.toMatch(/Unhandled|\n\s+at .+:\d+:\d+\)?\n/);
}

/** `pid` and every process descended from it, read from /proc. */
function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++)
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  return tree;
}

/**
 * `alacarte serve` in a process group of its own, as a shell starts it in a terminal, then `signal`
 * once it is making sandboxes ahead, to `whom`: its whole process group ('group': what Ctrl-C in
 * the terminal does, SIGINT to the foreground group) or the node and every process under it
 * ('tree': systemd's default stop, SIGTERM to every process of the service). The node's helper
 * programs get the signal too. Resolves with its exit code and output.
 */
async function signalAllWhileMaking(
  signal: NodeJS.Signals,
  whom: 'group' | 'tree',
): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--port',
      '0',
      '--ssh-port',
      '0',
      '--data',
      nodeProcess.dataDir,
      '--config',
      nodeProcess.configFile,
    ],
    {
      detached: true,
      env: { ...process.env, ALACARTE_LOG_LEVEL: 'warn', ALACARTE_OPERATOR_TOKEN: OPERATOR },
    },
  );
  let output = '';
  child.stdout.on('data', (b: Buffer) => {
    output += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    output += b.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    expect(
      await waitFor(() => output.includes('listening on') || child.exitCode !== null, 60_000),
      output,
    ).toBe(true);
    await untilMakingBegins();
    if (whom === 'group') process.kill(-child.pid!, signal);
    else
      for (const pid of processTree(child.pid!)) {
        try {
          process.kill(pid, signal);
        } catch {
          // ended meanwhile
        }
      }
    return { code: await exited, output };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

const crunReady = crunSkipReason === undefined;
let leaseId = '';
let credential = '';
/** Every lease rented here: id → bearer credential (the last test stops them all). */
const rented = new Map<string, string>();

describe.skipIf(!crunReady)('serve (crun) on SIGTERM', { timeout: 180_000 }, () => {
  it('removes the sandboxes it was making ahead when the signal came', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    await nodeProcess.start();
    await untilMakingBegins();
    const stopped = await sigterm();
    expectCleanStop(stopped);
    expect(stopped.output).toContain('alacarte: stopped\n');
    expect(leftFor(new Set())).toEqual({ mounts: [], containers: [], dirs: [] });
  });

  it('keeps a running lease and removes the refill its rent set off', async () => {
    const server = await nodeProcess.start();
    await untilPoolFull(new Set());
    const { tokens: pay } = await tokens(server.mintUrl, 1, 128);
    const created = await postJson(`${server.url}/v1/leases`, body, { 'x-cashu': pay[0]!.token });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    leaseId = String(created.body.id);
    credential = String(created.body.token);
    rented.set(leaseId, credential);
    // The take set off a refill (start()'s finally): the signal comes while it is being made.
    const stopped = await sigterm();
    expectCleanStop(stopped);
    // The operator is told what runs on.
    expect(stopped.output).toContain(
      "alacarte: stopped; 1 lease's sandbox keeps running to its deadline (the next start on this data directory takes it up again)\n",
    );
    const leased = new Set(leaseLinks().values());
    expect([...leaseLinks().keys()]).toEqual([leaseId]);
    expect(leftFor(leased)).toEqual({ mounts: [], containers: [], dirs: [] });
    // The lease's sandbox runs on, with its layer and root mounted.
    const [name] = [...leased];
    expect(containers().get(name!)).toBe('running');
    expect(mountsUnder(realpathSync(join(nodeProcess.runtimeDir, name!))).length).toBe(2);
  });

  it('with a full pool: the next node picks up the lease, and SIGTERM leaves only its sandbox', async () => {
    const server = await nodeProcess.start();
    const leased = new Set(leaseLinks().values());
    expect(nodeProcess.runningSandboxes()).toEqual([leaseId]);
    const shown = await postJson(
      `${server.url}/v1/leases/${leaseId}`,
      undefined,
      { authorization: `Bearer ${credential}` },
      'GET',
    );
    expect(shown.status).toBe(200);
    expect(shown.body.state).toBe('running');
    await untilPoolFull(leased);
    expectCleanStop(await sigterm());
    expect(leftFor(leased)).toEqual({ mounts: [], containers: [], dirs: [] });
    expect(nodeProcess.runningSandboxes()).toEqual([leaseId]);
  });

  it('removes what rents racing the signal set off', async () => {
    const server = await nodeProcess.start();
    const { tokens: pay } = await tokens(server.mintUrl, 4, 128);
    // Rents and the signal at once: each rent is answered (a running lease) or cut off; whatever
    // the shutdown's takes and refills made for nobody goes.
    const rents = pay.map((p) =>
      postJson(`${server.url}/v1/leases`, body, { 'x-cashu': p.token }).catch(() => undefined),
    );
    await new Promise((r) => setTimeout(r, 20));
    const stopped = await sigterm();
    const answers = await Promise.all(rents);
    expectCleanStop(stopped);
    for (const a of answers) {
      if (!a) continue;
      expect([201, 503], JSON.stringify(a.body)).toContain(a.status);
      if (a.status === 201) rented.set(String(a.body.id), String(a.body.token));
    }
    const leased = new Set(leaseLinks().values());
    expect(leftFor(leased)).toEqual({ mounts: [], containers: [], dirs: [] });
    for (const name of leased) expect(containers().get(name)).toBe('running');

    // Money: the same token sent again to the next node gets the lease it bought (200), its refund
    // (a start the shutdown cut short), or a lease now (201: it had not been taken); the books balance.
    const next = await nodeProcess.start();
    for (const [i, a] of answers.entries()) {
      if (a?.status === 201) continue;
      const replay = await postJson(`${next.url}/v1/leases`, body, { 'x-cashu': pay[i]!.token });
      expect([200, 201, 503], JSON.stringify(replay.body)).toContain(replay.status);
      if (replay.status === 503) expect(replay.body).toMatchObject({ error: 'start_failed', refunded: 128 });
      else rented.set(String(replay.body.id), String(replay.body.token));
    }
    expect(expectBalanced(await ledgerOf(next.url, OPERATOR))).toEqual([]);
    expectCleanStop(await sigterm());
  });

  it('an exec that outlives the drain: the node still stops whole, and the lease runs on', async () => {
    const server = await nodeProcess.start();
    const { tokens: pay } = await tokens(server.mintUrl, 1, 128);
    const created = await postJson(`${server.url}/v1/leases`, body, { 'x-cashu': pay[0]!.token });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = String(created.body.id);
    const auth = { authorization: `Bearer ${String(created.body.token)}` };
    rented.set(id, String(created.body.token));
    // Longer than the drain (10 s) waits for requests under way: it is cut off.
    const exec = postJson(
      `${server.url}/v1/leases/${id}/exec`,
      { command: ['sleep', '40'], timeout_seconds: 60 },
      auth,
    ).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const sent = Date.now();
    const stopped = await Promise.race([
      sigterm(),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 40_000)),
    ]);
    // Before: Fastify's close gave up first ("Plugin did not start in time") and the node ran on,
    // its SSH port open, until a second signal.
    expect(stopped, 'the node did not exit within 40 s of SIGTERM').toBeDefined();
    expectCleanStop(stopped!);
    expect(stopped!.output).not.toContain('did not start in time');
    expect(Date.now() - sent).toBeLessThan(30_000);
    expect(stopped!.output).toMatch(/alacarte: stopped; \d+ leases' sandboxes keep running/);
    await exec;
    // The next node has the lease running.
    const next = await nodeProcess.start();
    const shown = await postJson(`${next.url}/v1/leases/${id}`, undefined, auth, 'GET');
    expect(shown.body.state).toBe('running');
    expectCleanStop(await sigterm());
  });

  it('a signal to its helpers as well (Ctrl-C, systemd) leaves nothing made ahead either', async () => {
    // Each round signals while a sandbox is being made ahead, when the node's helpers are at work.
    const rounds = [
      ['SIGINT', 'group'],
      ['SIGTERM', 'tree'],
      ['SIGINT', 'group'],
      ['SIGTERM', 'tree'],
      ['SIGTERM', 'group'],
    ] as const;
    for (const [signal, whom] of rounds) {
      const leased = new Set(leaseLinks().values());
      const stopped = await signalAllWhileMaking(signal, whom);
      expectCleanStop(stopped);
      // The group's signal reaches the node alone (its helpers have a group of their own): the
      // making under way ends as made, not failed.
      if (whom === 'group') expect(stopped.output).not.toMatch(/preparing .* failed|spawner shell/);
      expect(leftFor(leased), `${signal} to the ${whom}:\n${stopped.output}`).toEqual({
        mounts: [],
        containers: [],
        dirs: [],
      });
      for (const name of leased) expect(containers().get(name)).toBe('running');
    }
  });

  it.each([
    ['SIGTERM', 'SIGTERM'],
    ['SIGTERM', 'SIGINT'],
    ['SIGINT', 'SIGTERM'],
  ] as const)(
    'a %s then a %s during shutdown leave nothing the next start does not sweep',
    async (first, second) => {
      const server = await nodeProcess.start();
      await untilMakingBegins();
      // The second signal once the node says it is stopping (its handler has run; its shutdown,
      // which waits for the making under way, is not done): it ends the process at once, whatever
      // its kind (none is ignored).
      const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        server.process.once('exit', (code, signal) => resolve({ code, signal })),
      );
      let secondSent = false;
      server.process.stdout.on('data', (b: Buffer) => {
        if (b.toString().includes('stopping') && server.process.exitCode === null && !secondSent) {
          secondSent = true;
          server.process.kill(second);
        }
      });
      server.process.kill(first);
      expect(await ended).toEqual({ code: null, signal: second });
      nodeProcess.server = undefined;
      const leased = new Set(leaseLinks().values());
      const cutShort = leftFor(leased);
      const again = await nodeProcess.start();
      // The next node removed all of it before it listened.
      const mounted = mountsUnder(realpathSync(nodeProcess.dataDir));
      expect(cutShort.mounts.filter((m) => mounted.includes(m))).toEqual([]);
      const known = containers();
      expect(cutShort.containers.filter((n) => known.has(n))).toEqual([]);
      expect(cutShort.dirs.filter((n) => sandboxDirs().includes(n))).toEqual([]);
      await untilPoolFull(new Set(leaseLinks().values()));
      // Every lease stopped: the last node on the data directory leaves nothing at all.
      for (const [id, token] of rented) {
        const stop = await postJson(
          `${again.url}/v1/leases/${id}`,
          undefined,
          { authorization: `Bearer ${token}` },
          'DELETE',
        );
        expect(stop.status, JSON.stringify(stop.body)).toBe(200);
      }
      // A stop's removal follows its answer (src/leases/teardown-queue.ts).
      expect(await waitFor(() => leaseLinks().size === 0, 30_000)).toBe(true);
      expectCleanStop(await sigterm());
      expect(leftFor(new Set())).toEqual({ mounts: [], containers: [], dirs: [] });
    },
  );
});
