import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { CLI, type ServedNode, serveNode, tempDir } from '../../helpers/cli.js';
import { typeUntil, waitForShell } from '../../helpers/terminal.js';
import { runCli, runJson } from './run-cli.js';

/**
 * The built `alacarte` CLI as a subprocess against a real node (`alacarte serve`, crun sandboxes,
 * its mint with the fake Lightning backend that pays its own invoices). Needs `npm run build`.
 */
let node: ServedNode;
beforeAll(async () => {
  const dataDir = tempDir('cli-node');
  node = await serveNode({ dataDir });
}, 120_000);
afterAll(async () => {
  await node?.stop();
});

const user = () => ({ home: tempDir('cli-home'), url: node.url });
/** The half-block characters qrcode-terminal draws a small QR code with. */
const QR_BLOCKS = /[\u2580\u2584\u2588]/;
type Balance = { balance: number };

// Each command is a fresh Node process; on a busy 2-core machine a test may take a while.
describe('alacarte CLI (renter)', { timeout: 240_000 }, () => {
  it('tops up, shows the balance, sends a token and receives it elsewhere', async () => {
    const alice = user();
    const topup = await runCli(['wallet', 'topup', '200'], alice);
    expect(topup.code).toBe(0);
    expect(topup.stdout).toMatch(/lnbcrt2u1\w+/);
    // The node runs the fake Lightning backend: the renter is told before paying anything.
    expect(topup.stdout).toContain("WARNING: this mint's Lightning backend 'fake' is a test backend");
    expect(topup.stdout).toContain('no real money moves');
    expect(topup.stdout).toContain('added 200 sat — balance: 200 sat');
    expect(topup.stderr).toContain('alacarte wallet seed');
    // Piped, stdout carries the invoice text alone: no QR code's block characters around it.
    expect(topup.stdout).not.toMatch(QR_BLOCKS);
    // On a terminal (script(1) gives the CLI one) the QR code is drawn under the invoice.
    const onTty = spawnSync('script', ['-qfec', `${process.execPath} ${CLI} wallet topup 10`, '/dev/null'], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, ALACARTE_HOME: alice.home, ALACARTE_URL: node.url },
    });
    expect(onTty.status, onTty.stdout).toBe(0);
    expect(onTty.stdout).toMatch(/lnbcrt100n1\w+/);
    expect(onTty.stdout).toMatch(QR_BLOCKS);
    expect(onTty.stdout).toContain('added 10 sat — balance: 210 sat');
    await runCli(['wallet', 'send', '10'], alice);

    const balance = await runCli(['wallet', 'balance'], alice);
    expect(balance).toMatchObject({ code: 0, stdout: '200 sat\n' });

    const send = await runCli(['wallet', 'send', '21'], alice);
    expect(send.code).toBe(0);
    const token = send.stdout.trim();
    expect(token).toMatch(/^cashuB[A-Za-z0-9_-]+$/);
    expect((await runJson<Balance>(['wallet', 'balance'], alice)).balance).toBe(179);

    const bob = user();
    const received = await runCli(['wallet', 'receive', '-'], bob, { input: `${token}\n` });
    expect(received).toMatchObject({ code: 0, stdout: 'received 21 sat — balance: 21 sat\n' });
    const again = await runCli(['wallet', 'receive', token], user());
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^alacarte wallet receive: .+/m);
  });

  it('offers names both ways to pay: the Cashu mint and, as this node takes it, Lightning (L402)', async () => {
    const offers = await runCli(['offers'], user());
    expect(offers.code).toBe(0);
    expect(offers.stdout).toContain(`pays with Cashu ecash (sat) of: ${node.url}/mint\n`);
    expect(offers.stdout).toContain('and with Lightning (L402, sat): see the 402 of a request\n');
  });

  it('withdraws to a Lightning invoice, and restores a wallet from its seed phrase elsewhere', async () => {
    const me = user();
    await runJson(['wallet', 'topup', '100'], me);
    const invoice = (await new FakeLightningBackend().createInvoice(Amount.of(25), 'coffee')).bolt11;
    const paid = await runJson<{ paid: number; fee: number; balance: number }>(
      ['wallet', 'withdraw', invoice],
      me,
    );
    expect(paid.paid).toBe(25);
    expect(paid.balance).toBe(75 - paid.fee);

    const seed = await runCli(['wallet', 'seed'], me);
    expect(seed.stdout.trim().split(' ')).toHaveLength(12);
    const elsewhere = user();
    const restored = await runCli(['wallet', 'restore', '--seed-phrase-stdin'], elsewhere, {
      input: seed.stdout,
    });
    expect(restored.code).toBe(0);
    expect(restored.stdout).toBe(`restored ${paid.balance} sat — balance: ${paid.balance} sat\n`);
    // Not "created a new wallet — back up its seed phrase": the seed is the one just given.
    expect(restored.stderr).not.toContain('created a new wallet');
    // The restored wallet spends normally (its counters moved past what the mint has signed).
    expect((await runCli(['wallet', 'send', '5'], elsewhere)).code).toBe(0);
  });

  it("wallet send draws on the node's own mint, and not having enough of it says what other mints hold", async () => {
    const other = await serveNode({ dataDir: tempDir('cli-other-node') });
    try {
      const me = user();
      // The other node's ecash first: the wallet's first mint, which `send` used to draw on.
      await runJson(['wallet', 'topup', '50'], { ...me, url: other.url });
      const poor = await runCli(['rent', '--offer', 'small', '--for', '10m'], me);
      expect(poor.code).toBe(1);
      expect(poor.stderr).toContain(
        `alacarte rent: not enough ecash of the mint the node takes (${node.url}/mint): need 10 sat, have 0 sat; 50 sat more is at other mints, which this node does not take\n`,
      );
      await runJson(['wallet', 'topup', '40'], me);
      const sent = await runJson<{ mint: string; token: string }>(['wallet', 'send', '15'], me);
      expect(sent.mint).toBe(`${node.url}/mint`);
      expect(getTokenMetadata(sent.token).mint).toBe(`${node.url}/mint`);
      // More than this node's mint holds (25 sat left): the other mint's, said on stderr.
      const far = await runCli(['wallet', 'send', '45', '--json'], me);
      expect(far.code).toBe(0);
      expect((JSON.parse(far.stdout) as { mint: string }).mint).toBe(`${other.url}/mint`);
      expect(far.stderr).toContain(
        `alacarte: not enough ecash of the mint the node at ${node.url} takes; the token is ecash of ${other.url}/mint, which that node does not take`,
      );
      // With the other node down, a token for this one is still made (its mint answers).
      await other.stop();
      expect((await runJson<{ mint: string }>(['wallet', 'send', '5'], me)).mint).toBe(`${node.url}/mint`);
    } finally {
      await other.stop();
    }
  });

  it('Ctrl-C once the payment is sent stops the lease it bought as it starts, and refunds it', async () => {
    const me = user();
    await runJson(['wallet', 'topup', '100'], me);
    // A proxy in front of the node that holds the create's answer until told: the Ctrl-C comes
    // while the payment is with the node.
    let answered = () => {};
    const created = new Promise<void>((r) => {
      answered = r;
    });
    let release = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    const proxy = createHttpServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length'].includes(k)),
      ) as Record<string, string>;
      const up = await fetch(`${node.url}${req.url}`, {
        method: req.method,
        headers,
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
      const body = Buffer.from(await up.arrayBuffer());
      // The paid create (the first POST, without payment, asks the price: 402).
      if (req.method === 'POST' && req.url === '/v1/leases' && req.headers['x-cashu']) {
        answered();
        await released;
      }
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    try {
      const cli = spawn(process.execPath, [CLI, 'rent', '--offer', 'small', '--for', '1h'], {
        env: { ...process.env, ALACARTE_HOME: me.home, ALACARTE_URL: url },
      });
      let stderr = '';
      cli.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      const exited = new Promise<number | null>((r) => cli.on('exit', (code) => r(code)));
      await created;
      cli.kill('SIGINT');
      for (let i = 0; i < 100 && !stderr.includes('stopped for a refund as soon as it has started'); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(stderr).toContain(
        'alacarte rent: the payment is sent: the lease is stopped for a refund as soon as it has started (Ctrl-C again to leave it running)',
      );
      release();
      expect(await exited).toBe(130);
      const m = /interrupted: lease (lse_\w+) stopped as it started; refunded (\d+) sat of the 60 paid/.exec(
        stderr,
      );
      expect(m, stderr).not.toBeNull();
      const refunded = Number(m?.[2]);
      expect(refunded).toBeGreaterThanOrEqual(58);
      const leases = await runJson<{ leases: Array<{ id: string; state: string }> }>(['leases'], me);
      expect(leases.leases.find((l) => l.id === m?.[1])?.state).toBe('stopped');
      expect((await runJson<Balance>(['wallet', 'balance'], me)).balance).toBe(100 - 60 + refunded);
    } finally {
      release();
      proxy.close();
    }
  });

  it('rents with an SSH key and shows the ssh command, which logs in', async () => {
    const me = user();
    await runJson(['wallet', 'topup', '100'], me);
    const key = join(me.home, 'id_test');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const rent = await runCli(['rent', '--offer', 'small', '--for', '10m', '--ssh-key', `${key}.pub`], me);
    expect(rent.code).toBe(0);
    // The key is not one ssh offers by itself: the command shown names it, so it works as printed.
    const m = /^ssh: ssh -i (\S+) -p (\d+) (lse_\w+)@(\S+)$/m.exec(rent.stdout);
    expect(m, rent.stdout).not.toBeNull();
    const [, identity, port, login, host] = m as unknown as [string, string, string, string, string];
    expect(identity).toBe(key);
    const ssh = spawnSync(
      'ssh',
      [
        ...['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', identity],
        ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'],
        ...['-p', port, `${login}@${host}`, '--', 'echo via-ssh'],
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(ssh.stdout).toBe('via-ssh\n');
    // Without any key (a HOME with no ~/.ssh), the line says where the password is.
    const keyless = await runCli(['rent', '--offer', 'small', '--for', '1m'], me, { env: { HOME: me.home } });
    expect(keyless.code, keyless.stderr).toBe(0);
    expect(keyless.stdout).toMatch(
      /^ssh: ssh -p \d+ lse_\w+@\S+ {2}\(no SSH key sent: .+ as password: its "token" in .+\/leases\.json\)$/m,
    );
    expect(keyless.stdout).toContain(join(me.home, 'leases.json'));
    const bad = await runCli(['rent', '--offer', 'small', '--for', '10m', '--ssh-key', key], me);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--ssh-key');
  });

  it('rents, execs `echo hi`, extends, stops, and the balance shows the refund', async () => {
    const me = user();
    await runJson(['wallet', 'topup', '500'], me);
    const lease = await runJson<{ id: string; paid: number; state: string; balance: number }>(
      ['rent', '--offer', 'small', '--for', '2h'],
      me,
    );
    expect(lease).toMatchObject({ state: 'running', paid: 120, balance: 380 });
    expect(JSON.stringify(lease)).not.toContain('cashu');

    const exec = await runCli(['exec', lease.id, '--', 'echo', 'hi'], me);
    expect(exec).toMatchObject({ code: 0, stdout: 'hi\n' });
    const failing = await runCli(['exec', lease.id, '--', 'sh', '-c', 'echo oops >&2; exit 3'], me);
    expect(failing).toMatchObject({ code: 3, stderr: 'oops\n' });

    const listed = await runCli(['leases'], me);
    expect(listed.stdout).toMatch(new RegExp(`${lease.id}\\s+running\\s+small\\s+busybox\\s+1h 59m`));
    // Its node out of reach (the list names another address): shown as last seen, and said so.
    const book = join(me.home, 'leases.json');
    const kept = readFileSync(book, 'utf8');
    writeFileSync(book, kept.replaceAll(node.url, 'http://127.0.0.1:9'));
    const unreached = await runCli(['leases'], me);
    // A lease's calls go to the node that sold it (as the list says), unless --url names one.
    const viaBook = await runCli(['exec', lease.id, '--', 'true'], me);
    const named = await runCli(['exec', lease.id, '--url', node.url, '--', 'echo', 'named'], me);
    writeFileSync(book, kept);
    expect(viaBook.code).toBe(1);
    expect(viaBook.stderr).toContain('127.0.0.1:9');
    expect(named).toMatchObject({ code: 0, stdout: 'named\n' });
    expect(unreached.code).toBe(0);
    expect(unreached.stdout).toContain(
      '1 lease(s) shown as last seen: their node did not answer (http://127.0.0.1:9)',
    );

    const extend = await runCli(['extend', lease.id, '--for', '1h'], me);
    expect(extend.code).toBe(0);
    expect(extend.stdout).toContain(`lease ${lease.id} extended by 1h for 60 sat: now until `);
    expect(extend.stdout).toContain('balance: 320 sat');

    const stop = await runJson<{ state: string; refunded: number; balance: number }>(['stop', lease.id], me);
    expect(stop.state).toBe('stopped');
    expect(stop.refunded).toBeGreaterThanOrEqual(170);
    expect(stop.balance).toBe(320 + stop.refunded);
    expect((await runJson<Balance>(['wallet', 'balance'], me)).balance).toBe(320 + stop.refunded);
    // A second stop is answered with the first refund again: said as such, and nothing is added.
    const again = await runCli(['stop', lease.id], me);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      `lease ${lease.id} was already stopped; its refund of ${stop.refunded} sat came into the wallet then\nbalance: ${320 + stop.refunded} sat\n`,
    );

    const after = await runCli(['exec', lease.id, '--', 'true'], me);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('(lease_not_running)');
    const mode = (name: string) => statSync(join(me.home, name)).mode & 0o777;
    expect(mode('leases.json')).toBe(0o600);
    expect(mode('wallet.json')).toBe(0o600);
  });

  it('explains what is wrong in one line with a hint, and exits non-zero', async () => {
    const me = user();
    const poor = await runCli(['rent', '--offer', 'small', '--for', '2h'], me);
    expect(poor.code).toBe(1);
    expect(poor.stderr).toContain('alacarte rent: not enough ecash: need 120 sat, have 0 sat\n');
    expect(poor.stderr).toContain('hint: run: alacarte wallet topup 200\n');
    const usage = await runCli(['rent', '--offer', 'small', '--for', 'soon'], me);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("not a duration: 'soon'");
    expect(usage.stderr).toContain('hint: see: alacarte rent --help');
    // The private half of a key pair (what ssh -i takes) is refused by name, before anything is paid.
    const privateKey = join(me.home, 'id_test');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', privateKey]);
    const wrongHalf = await runCli(['rent', '--offer', 'small', '--for', '2h', '--ssh-key', privateKey], me);
    expect(wrongHalf.code).toBe(2);
    expect(wrongHalf.stderr).toContain(
      `--ssh-key ${privateKey} is a private key (it stays with you): give its public key, ${privateKey}.pub`,
    );
    const unknown = await runCli(['exec', 'lse_nope', '--', 'true'], me);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('hint: see your leases: alacarte leases');
    const offline = await runCli(['offers'], { home: me.home, url: 'http://127.0.0.1:9' });
    expect(offline.code).toBe(1);
    expect(offline.stderr).toContain('is the node running?');
    for (const cmd of [
      ['offers'],
      ['rent'],
      ['exec'],
      ['shell'],
      ['wallet', 'topup'],
      ['wallet', 'restore'],
    ]) {
      const help = await runCli([...cmd, '--help'], me);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('Examples:');
    }
  });

  it('runs what is piped into `shell`, shows its output and exits with the shell’s status', async () => {
    const me = user();
    await runJson(['wallet', 'topup', '100'], me);
    const lease = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '10m'], me);
    // Sent once the shell reads (a line that comes before its line editing may be dropped), then
    // stdin ends: still a pipe, not a terminal, on this side.
    const piped = await runCli(['shell', lease.id], me, {
      typing: async (stdin, shown) => {
        await waitForShell(stdin, shown, { timeoutMs: 8_000 });
        stdin.write('echo piped-$((6*7))\nexit 3\n');
      },
    });
    expect(piped.stdout).toContain('piped-42');
    expect(piped.code).toBe(3);
    // Input that ends without an exit ends the shell as Ctrl-D does: status 0, output kept.
    const ended = await runCli(['shell', lease.id], me, {
      typing: async (stdin, shown) => {
        await waitForShell(stdin, shown, { timeoutMs: 8_000 });
        stdin.write('echo ended-$((2*3))\n');
      },
    });
    expect(ended.stdout).toContain('ended-6');
    expect(ended.code).toBe(0);
  });

  it('drives `shell` through a pseudo-terminal: typed `echo hi` shows hi, `exit` returns', async () => {
    const me = user();
    await runJson(['wallet', 'topup', '100'], me);
    const lease = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '10m'], me);
    // script(1) gives the CLI a real terminal, as a person at a keyboard would have.
    const child = spawn('script', ['-qfec', `${process.execPath} ${CLI} shell ${lease.id}`, '/dev/null'], {
      env: { ...process.env, ALACARTE_HOME: me.home, ALACARTE_URL: node.url, TERM: 'xterm' },
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    // Typed again when nothing answers: keys that come before the shell's line editing may be dropped.
    await typeUntil(child.stdin, 'echo hi-$((6*7))', () => out, /hi-42/, { enter: '\r', timeoutMs: 8_000 });
    child.stdin.write('exit\r');
    expect(await exited).toBe(0);
    child.stdin.end();
    await runCli(['stop', lease.id], me);
  });

  it('loses no ecash when killed -9 in the middle of `rent`', async () => {
    // Kill points: during the swap that splits 300 sat to the price, right after the payment is
    // recorded (the token is leaving), and while the node starts the sandbox.
    const points = [
      { op: 'swap', delayMs: 0 },
      { op: 'payment', delayMs: 0 },
      { op: 'payment', delayMs: 150 },
    ];
    let killedMidway = 0;
    for (const { op, delayMs } of points) {
      const me = user();
      const start = (await runJson<Balance>(['wallet', 'topup', '300'], me)).balance;
      const child = spawn(process.execPath, [CLI, 'rent', '--offer', 'small', '--for', '2h'], {
        env: { ...process.env, ALACARTE_HOME: me.home, ALACARTE_URL: node.url },
      });
      const exited = new Promise((resolve) => child.once('close', resolve));
      await expect
        .poll(() => hasPendingOp(me.home, op) || child.exitCode !== null, { interval: 2, timeout: 60_000 })
        .toBe(true);
      await new Promise((r) => setTimeout(r, delayMs));
      if (child.exitCode === null) killedMidway++;
      kill9(child);
      await exited;
      // The next command settles: the lease exists (its request replayed with the same token, so
      // the credential and change come back) or it was never bought.
      const after = await runJson<Balance & { pending: unknown[] }>(['wallet', 'balance'], me);
      const leases = (await runJson<{ leases: Array<{ id: string }> }>(['leases'], me)).leases;
      expect(leases.length).toBeLessThanOrEqual(1);
      expect(after.pending).toEqual([]);
      expect(after.balance).toBe(start - leases.length * 120);
      for (const l of leases) await runCli(['stop', l.id], me);
    }
    expect(killedMidway).toBeGreaterThan(0);
  });
});

function hasPendingOp(home: string, kind: string): boolean {
  try {
    const state = JSON.parse(readFileSync(join(home, 'wallet.json'), 'utf8')) as {
      ops: Array<{ kind: string }>;
    };
    return state.ops.some((o) => o.kind === kind);
  } catch {
    return false;
  }
}

function kill9(child: ChildProcess): void {
  if (child.exitCode === null) child.kill('SIGKILL');
}
