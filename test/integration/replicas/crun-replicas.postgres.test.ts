import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { presenceKey } from '../../../src/store/replica-notices.js';
import { CLI } from '../../helpers/cli.js';
import { expectBalanced, ledgerOf, postJson, tokens } from '../../helpers/lease-node.js';
import { type NodeProcess, QUARTER_OFFER, startReplicas } from '../../helpers/node-process.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';
import { runProcess } from '../../helpers/run-process.js';
import { sshClientOptions } from '../../helpers/ssh-client.js';

/**
 * Two `alacarte serve` replicas on one PostgreSQL, each with crun and its own sandboxes directory
 * (compute target `crun:<replica id>`). Each reconciles only its own leases: restarting one never
 * ends the other's healthy leases. A command for a lease the other replica holds is refused with
 * 421 `lease_elsewhere` (nothing touched); extend and stop work through either replica, and the
 * holder carries out the new deadline and the kill.
 */
const OPERATOR = 'operator-token-for-crun-replicas-0123';
const PRICE = 60; // 60 sat/h × 1 h
const body = { offer: 'quarter', seconds: 3600, image: 'busybox' };
const unavailable = testPostgresUnavailable();
const replicas: NodeProcess[] = [];
let storeUrl = '';

beforeAll(async () => {
  if (unavailable !== undefined) return;
  storeUrl = await testDatabase();
  await startReplicas({
    into: replicas,
    prefix: 'crun-replica',
    count: 2,
    storeUrl,
    config: {
      offers: [QUARTER_OFFER],
    },
    env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
  });
});

afterAll(async () => {
  for (const replica of replicas) await replica.cleanup();
});

/** Replica i's own address (the banner shows the public URL they share). */
const url = (i: number) => replicas[i]!.localUrl;

async function exec(i: number, lease: { id: string; token: string }, command: string[]) {
  return postJson(
    `${url(i)}/v1/leases/${lease.id}/exec`,
    { command },
    { authorization: `Bearer ${lease.token}` },
  );
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const give = Date.now() + 30_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > give) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The deadline (ms) a sandbox of replica 0 has, as its init reads it. */
async function deadlineInside(lease: { id: string; token: string }): Promise<number> {
  const r = await exec(0, lease, ['cat', '/run/alacarte/lease.json']);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return Date.parse((JSON.parse(String(r.body.stdout)) as { expires_at: string }).expires_at);
}

/** Whether replica i holds its presence lock in the test database, as the others see it. */
async function present(i: number): Promise<boolean> {
  const { classid, objid } = presenceKey(
    readFileSync(join(replicas[i]!.dataDir, 'replica.id'), 'utf8').trim(),
  );
  const client = new pg.Client({ connectionString: storeUrl });
  await client.connect();
  try {
    const r = await client.query(
      `select 1 from pg_locks where locktype = 'advisory' and granted and objsubid = 1 and classid = $1
         and objid = $2 and database = (select oid from pg_database where datname = current_database())`,
      [classid, objid],
    );
    return (r.rowCount ?? 0) > 0;
  } finally {
    await client.end();
  }
}

describe.skipIf(unavailable !== undefined)(`2 crun replicas on one PostgreSQL ${unavailable ?? ''}`, () => {
  it('keeps each replica to its own sandboxes, and extends and stops through either', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    // Each banner says where its store is, and which replica it is (never the store's URL).
    for (const r of replicas) {
      const id = readFileSync(join(r.dataDir, 'replica.id'), 'utf8').trim();
      expect(r.server?.output()).toContain(`store: PostgreSQL (shared by replicas; this one is ${id})`);
      expect(r.server?.output()).not.toContain('postgres://');
      // pg 8 warns when a statement is sent on a connection while another runs (pg 9 refuses it).
      expect(r.server?.output()).not.toContain('DeprecationWarning');
      // The replicas run on the fake Lightning backend here: each is told it cannot be shared.
      await until('the warning after the banner', () =>
        r.server?.output().includes('a test Lightning backend is one per process') ? true : undefined,
      );
    }
    const { wallet, tokens: pool } = await tokens(`${url(0)}/mint`, 5, PRICE);
    const created = [];
    // The last one with an SSH key.
    const key = join(mkdtempSync(join(tmpdir(), 'crun-replica-ssh-')), 'id');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const withKey = { ...body, ssh_keys: [readFileSync(`${key}.pub`, 'utf8').trim()] };
    for (const [i, t] of [0, 1, 0].entries()) {
      const res = await postJson(`${url(t)}/v1/leases`, i === 2 ? withKey : body, {
        'x-cashu': pool[i]!.token,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      created.push(res.body as { id: string; token: string });
    }
    const [onA, onB, onA2] = created as [
      { id: string; token: string },
      { id: string; token: string },
      { id: string; token: string },
    ];
    expect(replicas[0]!.runningSandboxes().sort()).toEqual([onA.id, onA2.id].sort());
    expect(replicas[1]!.runningSandboxes()).toEqual([onB.id]);

    // A command for A's lease reaching B: refused with a stable code, the lease untouched.
    const misdirected = await exec(1, onA, ['echo', 'hi']);
    expect(misdirected.status).toBe(421);
    expect(misdirected.body.error).toBe('lease_elsewhere');
    expect((await exec(0, onA, ['echo', 'hi'])).body.stdout).toBe('hi\n');

    // SSH likewise: through B the key logs in and is told where the lease runs (it was a bare
    // "Permission denied"); through A the command runs.
    const sshPort = async (i: number, lease: { id: string; token: string }) => {
      const r = await fetch(`${url(i)}/v1/leases/${lease.id}`, {
        headers: { authorization: `Bearer ${lease.token}` },
      });
      return ((await r.json()) as { ssh: { port: number } }).ssh.port;
    };
    const ssh = async (port: number) =>
      runProcess(
        'ssh',
        [
          // Each replica has its own host key here (the test shares only node.key and mint.seed).
          ...sshClientOptions('/dev/null', key).map((o) =>
            o === 'StrictHostKeyChecking=yes' ? 'StrictHostKeyChecking=no' : o,
          ),
          '-p',
          String(port),
          `${onA2.id}@127.0.0.1`,
          'echo via-ssh',
        ],
        { timeoutMs: 30_000 },
      );
    const viaB = await ssh(await sshPort(1, onB));
    expect(viaB.code).toBe(1);
    expect(viaB.stderr).toMatch(/this lease runs on another server of this node/);
    const viaA = await ssh(await sshPort(0, onA2));
    expect([viaA.code, viaA.stdout]).toEqual([0, 'via-ssh\n']);

    // B restarts (kill -9): A's leases keep running and answering; B's own comes back.
    await replicas[1]!.kill();
    await replicas[1]!.start();
    const client = new pg.Client({ connectionString: storeUrl });
    await client.connect();
    try {
      const states = await client.query('select id, state from leases order by id');
      expect(states.rows.map((r) => r.state)).toEqual(['running', 'running', 'running']);
    } finally {
      await client.end();
    }
    expect((await exec(0, onA, ['echo', 'still'])).body.stdout).toBe('still\n');
    expect((await exec(1, onB, ['echo', 'mine'])).body.stdout).toBe('mine\n');
    expect(replicas[0]!.runningSandboxes().sort()).toEqual([onA.id, onA2.id].sort());

    // Extended through B: A's sandbox has the new deadline by the time B answers (B told A over
    // LISTEN/NOTIFY and waited for A to say it wrote it).
    const extended = await postJson(
      `${url(1)}/v1/leases/${onA.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': pool[3]!.token },
    );
    expect(extended.status, JSON.stringify(extended.body)).toBe(200);
    expect(await deadlineInside(onA)).toBe(Date.parse(extended.body.expires_at as string));

    // Stopped through B: the refund is in B's answer, and A has ended the sandbox by then.
    const stopped = await fetch(`${url(1)}/v1/leases/${onA.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${onA.token}` },
    });
    const stoppedBody = (await stopped.json()) as { state: string; refund?: string };
    expect(stopped.status).toBe(200);
    expect(stoppedBody.state).toBe('stopped');
    expect(stoppedBody.refund).toBeTypeOf('string');
    expect(replicas[0]!.runningSandboxes()).toEqual([onA2.id]);
    const refund = await wallet.receive(stoppedBody.refund!);
    expect(refund.reduce((s, p) => s + Number(p.amount), 0)).toBeGreaterThan(0);
    expect((await exec(0, onA2, ['echo', 'other'])).body.stdout).toBe('other\n');

    // A down (kill -9): its lease cannot be extended through B, before any money moves (its
    // sandbox could not take the new deadline); once A is back, the same token extends it.
    const before = await deadlineInside(onA2);
    await replicas[0]!.kill();
    await until('A to be seen down', async () => ((await present(0)) ? undefined : true));
    const refused = await postJson(
      `${url(1)}/v1/leases/${onA2.id}/extend`,
      { seconds: 600 },
      { 'x-cashu': pool[4]!.token },
    );
    expect(refused.status, JSON.stringify(refused.body)).toBe(503);
    expect(refused.body.error).toBe('replica_unavailable');
    expect(refused.headers.get('retry-after')).toBe('5');
    await replicas[0]!.start();
    expect(await present(0)).toBe(true);
    expect(await deadlineInside(onA2)).toBe(before);
    const extendedLater = await postJson(
      `${url(1)}/v1/leases/${onA2.id}/extend`,
      { seconds: 600 },
      { 'x-cashu': pool[4]!.token },
    );
    expect(extendedLater.status, JSON.stringify(extendedLater.body)).toBe(200);
    expect(await deadlineInside(onA2)).toBe(before + 600_000);

    // That paid extension sent again while A is down once more: "retry" (it is paid; never 503's
    // "nothing charged"), and the same answer once A is back; never a second charge.
    await replicas[0]!.kill();
    await until('A to be seen down', async () => ((await present(0)) ? undefined : true));
    const replayDown = await postJson(
      `${url(1)}/v1/leases/${onA2.id}/extend`,
      { seconds: 600 },
      { 'x-cashu': pool[4]!.token },
    );
    expect(replayDown.status, JSON.stringify(replayDown.body)).toBe(429);
    expect(replayDown.body.error).toBe('rate_limited');
    await replicas[0]!.start();
    const replayUp = await postJson(
      `${url(1)}/v1/leases/${onA2.id}/extend`,
      { seconds: 600 },
      { 'x-cashu': pool[4]!.token },
    );
    expect(replayUp.status, JSON.stringify(replayUp.body)).toBe(200);
    expect(replayUp.body.expires_at).toBe(extendedLater.body.expires_at);
    expect(await deadlineInside(onA2)).toBe(before + 600_000);

    // Stopped through B while A is down: answered at once with the refund (its renter's money does
    // not wait for A); A ends the sandbox when it is back.
    await replicas[0]!.kill();
    await until('A to be seen down', async () => ((await present(0)) ? undefined : true));
    const stoppedAway = await fetch(`${url(1)}/v1/leases/${onA2.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${onA2.token}` },
    });
    const awayBody = (await stoppedAway.json()) as { state: string; refund?: string };
    expect([stoppedAway.status, awayBody.state]).toEqual([200, 'stopped']);
    await replicas[0]!.start();
    // (The test's wallet talks to A's mint.)
    const refundAway = await wallet.receive(awayBody.refund!);
    expect(refundAway.reduce((n, p) => n + Number(p.amount), 0)).toBeGreaterThan(0);
    await until('A to end the lease stopped while it was down', () =>
      replicas[0]!.runningSandboxes().includes(onA2.id) ? undefined : true,
    );

    for (const i of [0, 1]) {
      const books = await ledgerOf(url(i), OPERATOR);
      expect(expectBalanced(books)).toEqual([]);
      expect(books.received).toBe(4 * PRICE + PRICE / 6); // 600 s more at 60 sat/h
      expect(books.leases.running).toBe(1);
    }
  });
});
