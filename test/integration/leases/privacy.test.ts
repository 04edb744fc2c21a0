import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { getDecodedToken, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { type LeaseTestNode, ledgerOf, startLeaseNode, tokenOf, tokens } from '../../helpers/lease-node.js';

/**
 * Privacy (ARCHITECTURE.md): after a full workload — create, replay, exec, extend, stop, a failed
 * start refunded, rejections — no token, change, refund, proof secret or bearer credential may be
 * found in clear anywhere under the data directory (SQLite file, WAL, keys, sandbox files) or in the
 * node's debug log.
 */
const OPERATOR = 'operator-token-for-privacy-tests-01';
let t: LeaseTestNode;
let log = '';
/** Everything that must never be written down, with a label saying what it is. */
const secrets = new Map<string, string>();
let keysetIds: string[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'alacarte-privacy-'));
let closed = false;

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      log += chunk.toString('utf8');
      done();
    },
  });
  t = await startLeaseNode({ operatorToken: OPERATOR }, dataDir, {
    images: ['busybox', 'ghost'],
    logger: createLogger({ level: 'debug', destination: sink }),
  });
  const w = new Wallet(t.mintUrl, { unit: 'sat' });
  await w.loadMint();
  keysetIds = w.keyChain.getKeysets().map((k) => k.id);
});
afterAll(async () => {
  if (!closed) await t?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Remembers a token and every proof secret in it. */
function remember(label: string, token: unknown): void {
  if (typeof token !== 'string') throw new Error(`${label}: no token`);
  secrets.set(token, label);
  for (const p of getDecodedToken(token, keysetIds).proofs) secrets.set(p.secret, `${label} proof secret`);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) out.push(...filesUnder(path));
    else if (st.isFile()) out.push(path);
  }
  return out;
}

/** Names of the files under the data directory that hold `needle`. */
function foundIn(needle: string): string {
  return filesUnder(t.dataDir)
    .filter((f) => readFileSync(f).includes(Buffer.from(needle, 'utf8')))
    .join(' ');
}

/** Every secret found in the data directory's files or in the log, as "what — where". */
function leaks(): string[] {
  const found: string[] = [];
  const files = filesUnder(t.dataDir);
  expect(files.some((f) => f.endsWith('alacarte.sqlite'))).toBe(true);
  for (const file of files) {
    const bytes = readFileSync(file);
    for (const [needle, label] of secrets) {
      if (bytes.includes(Buffer.from(needle, 'utf8'))) found.push(`${label} — ${file}`);
    }
  }
  for (const [needle, label] of secrets) if (log.includes(needle)) found.push(`${label} — log`);
  return found;
}

/**
 * The renter talks from its own loopback address, 127.0.0.2, so that its IP address can be
 * searched for too: the node must not write it down anywhere.
 */
const CLIENT_IP = '127.0.0.2';
function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  method = 'POST',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        localAddress: CLIENT_IP,
        headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const small = { offer: 'small', seconds: 7200, image: 'busybox' };
const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });

describe('nothing secret is written down', () => {
  it("writes nothing a lease's server answers or a port's visitor asks for into the log", async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 1, 128);
    // A server that answers something that is not HTTP, with a cookie and 70 kB in it.
    const reply = `printf 'XTTP/1.1 200 OK\\r\\nSet-Cookie: session=TENANTSECRET42\\r\\n'; head -c 70000 /dev/zero | tr '\\0' Z`;
    const created = await postJson(
      `${t.url}/v1/leases`,
      { ...small, ports: [8080], command: ['sh', '-c', `while :; do (${reply}) | nc -l -p 8080; done`] },
      { 'x-cashu': pool[0]!.token },
    );
    expect(created.status).toBe(201);
    const before = log.length;
    let refusals = 0;
    for (let i = 0; i < 50 && refusals < 3; i++) {
      const res = await postJson(
        `${t.url}/v1/leases/${created.body.id}/ports/8080/in/PATHTOKEN999`,
        undefined,
        {},
        'GET',
      );
      expect(res.status).toBe(502);
      if (String(res.body.message).includes('not valid HTTP')) refusals++;
      else await new Promise((r) => setTimeout(r, 200));
    }
    expect(refusals).toBe(3);
    const written = log.slice(before);
    expect(written).not.toContain('TENANTSECRET42');
    expect(written).not.toContain('ZZZZ');
    expect(written).not.toContain('PATHTOKEN999');
    expect(written.length).toBeLessThan(20_000);
    await postJson(`${t.url}/v1/leases/${created.body.id}`, undefined, auth(created.body.token), 'DELETE');
  });

  it('after a full workload the data directory and the debug log hold no token, secret or credential', async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 5, 128);
    pool.forEach((p, i) => {
      remember(`payment token ${i}`, p.token);
    });
    const [create, extend, failing, rejected, idem] = pool as [
      (typeof pool)[0],
      (typeof pool)[0],
      (typeof pool)[0],
      (typeof pool)[0],
      (typeof pool)[0],
    ];

    expect((await postJson(`${t.url}/v1/leases`, small)).status).toBe(402);
    const created = await postJson(`${t.url}/v1/leases`, small, {
      'x-cashu': create.token,
      'idempotency-key': 'privacy-idem-key-1',
    });
    expect(created.status).toBe(201);
    secrets.set(String(created.body.token), 'bearer credential');
    remember('change of the create', created.body.change);
    const replay = await postJson(`${t.url}/v1/leases`, small, { 'x-cashu': create.token });
    expect(replay.status).toBe(200);
    // The key with another token is refused: nothing of the lease in the answer (or the log).
    const byKey = await postJson(`${t.url}/v1/leases`, small, {
      'x-cashu': idem.token,
      'idempotency-key': 'privacy-idem-key-1',
    });
    expect(byKey.status).toBe(409);
    const id = String(created.body.id);

    const exec = await postJson(
      `${t.url}/v1/leases/${id}/exec`,
      { command: ['sh', '-c', 'cat /run/alacarte/lease.json'] },
      auth(created.body.token),
    );
    expect(exec.status).toBe(200);
    expect(
      (await postJson(`${t.url}/v1/leases/${id}`, undefined, auth(created.body.token), 'GET')).status,
    ).toBe(200);
    expect(
      (await postJson(`${t.url}/v1/leases/${id}`, undefined, auth(`${created.body.token}x`), 'GET')).status,
    ).toBe(401);

    const extended = await postJson(
      `${t.url}/v1/leases/${id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': extend.token },
    );
    expect(extended.status).toBe(200);
    remember('change of the extension', extended.body.change);
    const extendedAgain = await postJson(
      `${t.url}/v1/leases/${id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': extend.token },
    );
    expect(extendedAgain.status).toBe(200);

    const tooSmall = await postJson(
      `${t.url}/v1/leases`,
      { ...small, seconds: 3600 * 100 },
      { 'x-cashu': rejected.token },
    );
    expect(tooSmall.status).toBe(400);

    const failed = await postJson(
      `${t.url}/v1/leases`,
      { ...small, image: 'ghost' },
      { 'x-cashu': failing.token },
    );
    expect(failed.status).toBe(503);
    remember('refund of a failed start', failed.body.refund);
    const failedAgain = await postJson(
      `${t.url}/v1/leases`,
      { ...small, image: 'ghost' },
      { 'x-cashu': failing.token },
    );
    expect(failedAgain.body.refund).toBe(failed.body.refund);

    const stop = await postJson(`${t.url}/v1/leases/${id}`, undefined, auth(created.body.token), 'DELETE');
    expect(stop.status).toBe(200);
    remember('refund of a stop', stop.body.refund);
    // A wallet redeems some of them at the mint: spent ecash leaves no secret behind either.
    const redeemer = new Wallet(t.mintUrl, { unit: 'sat' });
    await redeemer.loadMint();
    await redeemer.receive(String(created.body.change));
    await redeemer.receive(String(stop.body.refund));
    await redeemer.receive(String(failed.body.refund));
    await ledgerOf(t.url, OPERATOR);
    secrets.set(OPERATOR, 'operator token');
    secrets.set(CLIENT_IP, "the client's IP address");

    // A second lease left running, with a change token and credential, while files are read.
    const { wallet, proofs } = await (async () => {
      const w = new Wallet(t.mintUrl, { unit: 'sat' });
      await w.loadMint();
      const q = await w.createMintQuoteBolt11(200);
      return { wallet: w, proofs: await w.mintProofsBolt11(200, q.quote) };
    })();
    const live = await tokenOf(wallet, t.mintUrl, proofs, 150);
    remember('payment token of a running lease', live.token);
    const running = await postJson(`${t.url}/v1/leases`, small, { 'x-cashu': live.token });
    expect(running.status).toBe(201);
    secrets.set(String(running.body.token), 'bearer credential of a running lease');
    remember('change of a running lease', running.body.change);

    // The search itself works: what is meant to be there (lease ids) is found, WAL included.
    expect(foundIn(id)).toContain('alacarte.sqlite');
    // The log was written (the check is not vacuous) but says nothing secret.
    expect(log).toContain('/v1/leases');
    expect(log).toContain('sandbox failed to start');
    expect(secrets.size).toBeGreaterThan(20);
    expect(leaks()).toEqual([]);

    // Once closed, SQLite has checkpointed its WAL into the main file: still nothing.
    await postJson(`${t.url}/v1/leases/${running.body.id}`, undefined, auth(running.body.token), 'DELETE');
    await t.close();
    closed = true;
    expect(leaks()).toEqual([]);
  });
});

describe('ecash redeemed at the mint', () => {
  // The mint keeps only Y of spent proofs (neither secret nor C): a change token a wallet
  // receives leaves no proof secret behind either.
  it('a change token a wallet receives leaves no proof secret in the store', async () => {
    const node = await startLeaseNode({});
    try {
      const { tokens: pool } = await tokens(node.mintUrl, 1, 128);
      const created = await postJson(`${node.url}/v1/leases`, small, { 'x-cashu': pool[0]!.token });
      expect(created.status).toBe(201);
      const w = new Wallet(node.mintUrl, { unit: 'sat' });
      await w.loadMint();
      const ids = w.keyChain.getKeysets().map((k) => k.id);
      const change = getDecodedToken(String(created.body.change), ids).proofs;
      expect(change.length).toBeGreaterThan(0);
      await w.receive(String(created.body.change));
      const db = readFileSync(join(node.dataDir, 'alacarte.sqlite'));
      const wal = readFileSync(join(node.dataDir, 'alacarte.sqlite-wal'));
      expect(wal.length).toBeGreaterThan(0);
      for (const p of change) {
        const needle = Buffer.from(p.secret, 'utf8');
        expect(db.includes(needle) || wal.includes(needle)).toBe(false);
      }
    } finally {
      await node.close();
    }
  });
});
