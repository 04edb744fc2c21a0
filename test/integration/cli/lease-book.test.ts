import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/cli.js';
import { type LeaseTestNode, postJson, startLeaseNode } from '../../helpers/lease-node.js';
import { runCli, runJson } from './run-cli.js';

/**
 * The CLI's list of leases (`$ALACARTE_HOME/leases.json`) over a lease's whole life: `stop` of a
 * lease that expired, `leases` and `leases --prune` once leases ended, and `leases add` of a lease
 * rented with plain HTTP. The built CLI against a real node whose clock the test moves forward
 * (to expire a lease without waiting). Needs `npm run build`.
 */
let t: LeaseTestNode;
let clockOffsetMs = 0;
beforeAll(async () => {
  t = await startLeaseNode({}, undefined, { clock: () => new Date(Date.now() + clockOffsetMs) });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

type Balance = { balance: number };
type Listed = { leases: Array<{ id: string; state: string }>; pruned?: string[] };
const user = () => ({ home: tempDir('cli-book'), url: t.url });

describe('alacarte CLI: the list of leases', { timeout: 240_000 }, () => {
  it('stop of a lease that expired says so with the node’s words and exits 0; --prune drops it', async () => {
    const me = user();
    await runJson(['wallet', 'topup', '300'], me);
    const short = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '1m'], me);
    const long = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '1h'], me);
    const stopped = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '1h'], me);
    await runJson(['stop', stopped.id], me);
    const before = (await runJson<Balance>(['wallet', 'balance'], me)).balance;
    // Past the short lease's deadline, not the long one's: the node's reaper ends it.
    clockOffsetMs += 2 * 60_000;
    await expect
      .poll(async () => (await t.node.leases?.countByState())?.expired ?? 0, { timeout: 20_000 })
      .toBeGreaterThan(0);

    const stop = await runCli(['stop', short.id], me);
    expect(stop.stderr).toBe('');
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(
      new RegExp(
        `^lease ${short.id} had already ended \\(the node says: the lease is expired, at \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\); nothing to refund\\nbalance: ${before} sat\\n$`,
      ),
    );
    const json = await runJson<{ id: string; state: string; refunded: number; message: string } & Balance>(
      ['stop', short.id],
      me,
    );
    expect(json).toMatchObject({ id: short.id, state: 'expired', refunded: 0, balance: before });
    expect(json.message).toBe('the lease is expired');

    // Ended leases are shown as such, with the way to drop them.
    const listed = await runCli(['leases'], me);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${short.id}\\s+expired\\s+small`));
    expect(listed.stdout).toMatch(new RegExp(`${stopped.id}\\s+stopped\\s+small`));
    expect(listed.stdout).toMatch(new RegExp(`${long.id}\\s+running\\s+small`));
    expect(listed.stdout).toContain('2 ended; remove them from this list with: alacarte leases --prune');

    const pruned = await runCli(['leases', '--prune'], me);
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toContain('removed 2 ended lease(s) from this list:');
    expect(pruned.stdout).toContain(short.id);
    expect(pruned.stdout).toMatch(new RegExp(`${long.id}\\s+running\\s+small`));
    const after = await runJson<Listed>(['leases'], me);
    expect(after.leases.map((l) => l.id)).toEqual([long.id]);
    const book = JSON.parse(readFileSync(join(me.home, 'leases.json'), 'utf8')) as Listed;
    expect(book.leases.map((l) => l.id)).toEqual([long.id]);
    expect((await runJson<Listed>(['leases', '--prune'], me)).pruned).toEqual([]);
    // Nothing of the money moved by listing and pruning.
    expect((await runJson<Balance>(['wallet', 'balance'], me)).balance).toBe(before);
    await runCli(['stop', long.id], me);
  });

  it('leases add: a lease rented with curl is used from the CLI once the node accepts its credential', async () => {
    const payer = user();
    await runJson(['wallet', 'topup', '200'], payer);
    const token = (await runCli(['wallet', 'send', '60'], payer)).stdout.trim();
    const res = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 3600, image: 'busybox' },
      { 'x-cashu': token },
    );
    expect(res.status).toBe(201);
    const lease = res.body as { id: string; token: string };
    const answer = join(payer.home, 'lease.json');
    writeFileSync(answer, JSON.stringify(res.body), { mode: 0o600 });

    const me = user();
    // Refused before the node is asked: no credential given, or given as an argument (ps shows it).
    const none = await runCli(['leases', 'add', lease.id], me);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no lease credential in that input');
    // After `--`: a credential may start with '-' (base64url), which the parser would take for an
    // option (refused too, exit 2, with the parser's own message).
    const inArgs = await runCli(['leases', 'add', lease.id, '--', lease.token], me);
    expect(inArgs.code).toBe(2);
    expect(inArgs.stderr).toContain('never on the command line (ps shows it)');
    expect(inArgs.stderr).toContain('hint: see: alacarte leases add --help');
    expect(inArgs.stderr).not.toContain(lease.token);
    const asOption = await runCli(['leases', 'add', lease.id, `-_${lease.token.slice(2)}`], me);
    expect(asOption.code).toBe(2);
    expect(asOption.stderr).toContain('hint: see: alacarte leases add --help');
    // A credential the node does not accept adds nothing.
    const wrong = await runCli(['leases', 'add', lease.id], me, { input: `${lease.token.slice(0, -2)}xx\n` });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(
      `alacarte leases add: the node at ${t.url} does not accept that credential for lease ${lease.id}`,
    );
    expect((await runJson<Listed>(['leases'], me)).leases).toEqual([]);

    // The whole JSON answer as the file; the credential alone on stdin works the same.
    const added = await runCli(['leases', 'add', lease.id, '--credential-file', answer], me);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(
      new RegExp(
        `^lease ${lease.id} added: running, small, busybox, until \\S+Z \\(\\d\\S* .*left\\), at ${t.url}\\n`,
      ),
    );
    const again = await runCli(['leases', 'add', lease.id], me, { input: `${lease.token}\n` });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`lease ${lease.id} already listed; updated: running`);

    expect(await runCli(['exec', lease.id, '--', 'echo', 'hi'], me)).toMatchObject({
      code: 0,
      stdout: 'hi\n',
    });
    expect((await runJson<Listed>(['leases'], me)).leases).toMatchObject([
      { id: lease.id, state: 'running' },
    ]);
    // Its refund comes into this machine's wallet.
    const stop = await runJson<{ refunded: number } & Balance>(['stop', lease.id], me);
    expect(stop.refunded).toBeGreaterThanOrEqual(58);
    expect(stop.balance).toBe(stop.refunded);
    // An ended lease is not added: nothing can be done with it.
    const ended = await runCli(['leases', 'add', lease.id, '--credential-file', answer], user());
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain(`lease ${lease.id} has ended (stopped)`);
  });
});
