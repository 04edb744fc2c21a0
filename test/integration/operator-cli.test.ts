import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type ServedNode, serveNode, tempDir } from '../helpers/cli.js';

const OPERATOR = 'operator-token-for-cli-tests-0123456789';

/** Runs the built CLI and keeps what a user sees: exit code, stdout and stderr. */
function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('operator commands without a node', () => {
  it('answer --help with their usage on stdout, exit 0, for every operator command', () => {
    for (const [args, usage] of [
      [['ledger', '--help'], 'Usage: alacarte ledger'],
      [['payout', '--help'], 'Usage: alacarte payout --to BOLT11'],
      [['mint', 'rotate', '--help'], 'Usage: alacarte mint rotate'],
      [['image', '--help'], 'alacarte image build debian'],
      [['serve', '--help'], 'alacarte serve [--host H]'],
    ] as const) {
      const r = run([...args]);
      expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: '' });
      expect(r.stdout).toContain(usage);
    }
  });

  it('alacarte help names both sides, and how renter commands reach a node on another port', () => {
    const r = run(['help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('alacarte serve [--host H] [--port P]');
    expect(r.stdout).toContain('alacarte rent --offer ID --for 2h');
    expect(r.stdout).toContain('The node is --url URL or env\nALACARTE_URL (default http://127.0.0.1:8402');
  });

  it('alacarte version (and --version, -V) prints the package version', () => {
    const { version } = JSON.parse(readFileSync(join(CLI, '../../../package.json'), 'utf8')) as {
      version: string;
    };
    for (const arg of ['version', '--version', '-V']) {
      expect(run([arg])).toEqual({ status: 0, stdout: `alacarte ${version}\n`, stderr: '' });
    }
  });

  it('refuse a directory that holds no node, saying which one and what to give, and create nothing there', () => {
    const empty = join(tempDir('not-a-node'), 'data');
    for (const args of [
      ['ledger', '--data', empty],
      ['mint', 'rotate', '--data', empty],
      ['payout', '--to', 'lnbcrt10n1x', '--data', empty],
    ]) {
      const r = run(args);
      expect({ args, status: r.status, stdout: r.stdout }).toEqual({ args, status: 1, stdout: '' });
      expect(r.stderr).toContain(`no node's data in ${empty}`);
      expect(r.stderr).toContain('--data DIR');
    }
    expect(existsSync(empty)).toBe(false);
  });

  it('refuse the data directory of a node on PostgreSQL when not given its URL, and make no SQLite store there', () => {
    // What `alacarte serve` with ALACARTE_STORE_URL leaves: the keys, no alacarte.sqlite.
    const dir = tempDir('pg-node');
    writeFileSync(join(dir, 'mint.seed'), 'not read: the command stops before', { mode: 0o600 });
    const env = { ...process.env };
    delete env.ALACARTE_STORE_URL;
    for (const args of [
      ['ledger', '--data', dir],
      ['mint', 'rotate', '--data', dir],
      ['payout', '--to', 'lnbcrt10n1x', '--data', dir],
    ]) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
      expect({ args, status: r.status, stdout: r.stdout }).toEqual({ args, status: 1, stdout: '' });
      expect(r.stderr).toBe(
        `alacarte: no store in ${dir} (no alacarte.sqlite there): a node that keeps its store in PostgreSQL needs its URL here too, as ALACARTE_STORE_URL or store.url in --config FILE\n`,
      );
    }
    expect(existsSync(join(dir, 'alacarte.sqlite'))).toBe(false);
  });

  it('image list says where it looked when that directory has no images', () => {
    const empty = join(tempDir('not-a-node'), 'data');
    const r = run(['image', 'list', '--data', empty]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`no images in ${join(empty, 'images')}`);
  });
});

function alacarte(args: string[]): string {
  return execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env } });
}

describe('operator commands', () => {
  let node: ServedNode;
  beforeAll(async () => {
    node = await serveNode({ env: { ALACARTE_OPERATOR_TOKEN: OPERATOR } });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('alacarte ledger prints the same books as the operator route', async () => {
    const fromCli = JSON.parse(alacarte(['ledger', '--data', node.dataDir, '--json'])) as Record<
      string,
      unknown
    >;
    const fromHttp = await fetch(`${node.url}/v1/operator/ledger`, {
      headers: { authorization: `Bearer ${OPERATOR}` },
    }).then((r) => r.json());
    expect(fromCli).toEqual(fromHttp);
    expect(fromCli).toMatchObject({ unit: 'sat', received: 0, charged: 0, refunded: 0, held: 0 });
    // Money per mint: the own mint's figures apart from each trusted mint's (none configured here).
    const zero = { received: 0, charged: 0, refunded: 0, held: 0, bounced: 0 };
    expect(fromCli).toMatchObject({ bounced: 0, by_mint: { own: zero, trusted: [] } });
    const text = alacarte(['ledger', '--data', node.dataDir]);
    expect(text).toContain('(balanced)');
    expect(text).toContain('at own mint: received 0 = charged 0 + refunded 0 + held 0');
  });

  it('refuses the operator route without the operator token', async () => {
    for (const auth of [undefined, 'Bearer nope', `Bearer ${OPERATOR}x`]) {
      const res = await fetch(`${node.url}/v1/operator/ledger`, {
        headers: auth ? { authorization: auth } : {},
      });
      expect(res.status).toBe(401);
    }
  });

  it('alacarte mint rotate makes a new active keyset that the running node serves; the old one stays, inactive', async () => {
    type Keysets = { keysets: Array<{ id: string; active: boolean }> };
    const before = (await fetch(`${node.mintUrl}/v1/keysets`).then((r) => r.json())) as Keysets;
    const oldActive = before.keysets.find((k) => k.active)?.id;
    const out = alacarte(['mint', 'rotate', '--data', node.dataDir]);
    const newId = /new active keyset: (\S+)/.exec(out)?.[1];
    expect(newId).toBeDefined();
    expect(newId).not.toBe(oldActive);
    // The running node re-reads keysets at most every few seconds.
    let after: Keysets = before;
    for (let i = 0; i < 40 && !after.keysets.some((k) => k.id === newId && k.active); i++) {
      await new Promise((r) => setTimeout(r, 250));
      after = (await fetch(`${node.mintUrl}/v1/keysets`).then((r) => r.json())) as Keysets;
    }
    expect(after.keysets.find((k) => k.id === newId)?.active).toBe(true);
    expect(after.keysets.find((k) => k.id === oldActive)?.active).toBe(false);
  });

  it('alacarte payout beside a running node on the fake backend is refused; of more than is unpaid it says how much is unpaid; it pays nothing', async () => {
    const quote = (await fetch(`${node.mintUrl}/v1/mint/quote/bolt11`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 5, unit: 'sat' }),
    }).then((r) => r.json())) as { request: string };
    // The fake backend's payments are the running node's own: this process would book the node's
    // payout under way failed and pay again.
    const beside = run(['payout', '--to', quote.request, '--data', node.dataDir]);
    expect(beside.status).toBe(1);
    expect(beside.stderr).toContain('a node runs on this data directory with the fake Lightning backend');
    await node.stop();
    const r = run(['payout', '--to', quote.request, '--data', node.dataDir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('payout refused (payout_too_large)');
    expect(r.stderr).toContain('unpaid: 0 sat; ask your wallet for an invoice of at most 0 sat');
    const books = JSON.parse(alacarte(['ledger', '--data', node.dataDir, '--json'])) as {
      payouts: unknown[];
    };
    expect(books.payouts).toEqual([]);
  });
});
