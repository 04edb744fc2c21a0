import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { Alacarte } from '../../../src/sdk/client.js';
import { LocalWallet } from '../../../src/wallet/local-wallet.js';
import { CLI, type ServedNode, serveNode, tempDir } from '../../helpers/cli.js';
import { runJson } from './run-cli.js';

/**
 * Exec is binary-safe: 100,000 random bytes through `cat` come back byte for byte over the HTTP
 * API (`"encoding": "base64"`), the SDK (execBytes) and the built CLI (`alacarte exec`, raw bytes
 * both ways), against a real node (`alacarte serve`, crun sandboxes, its mint). Needs `npm run build`.
 */
let node: ServedNode;
let wallet: LocalWallet;
let sdk: Alacarte;
let lease: { id: string; token: string };

beforeAll(async () => {
  node = await serveNode({ dataDir: tempDir('exec-binary-node') });
  wallet = LocalWallet.open({ home: tempDir('exec-binary-sdk') });
  const topup = await wallet.createTopup(node.mintUrl, Amount.of(100));
  await wallet.completeTopup(topup.opId);
  sdk = new Alacarte({ url: node.url, wallet, retryDelayMs: 10 });
  const rented = await sdk.rent({ offer: 'small', seconds: 600, image: 'busybox' });
  lease = { id: rented.id, token: String(rented.token) };
}, 120_000);
afterAll(async () => {
  wallet?.close();
  await node?.stop();
});

const bytes = randomBytes(100_000);

async function execHttp(body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${node.url}/v1/leases/${lease.id}/exec`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${lease.token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('exec passes bytes unchanged', { timeout: 120_000 }, () => {
  it('HTTP: base64 stdin through cat comes back as the same bytes; stderr too', async () => {
    const r = await execHttp({ command: ['cat'], stdin: bytes.toString('base64'), encoding: 'base64' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ exit_code: 0, stderr: '', truncated: false, encoding: 'base64' });
    const out = Buffer.from(String(r.body.stdout), 'base64');
    expect(out.length).toBe(100_000);
    expect(out.equals(bytes)).toBe(true);

    const err = await execHttp({
      command: ['sh', '-c', 'cat >&2; exit 4'],
      stdin: bytes.subarray(0, 1000).toString('base64'),
      encoding: 'base64',
    });
    expect(err.body.exit_code).toBe(4);
    expect(Buffer.from(String(err.body.stderr), 'base64').equals(bytes.subarray(0, 1000))).toBe(true);

    // utf8 stays the default and answers as before (no encoding field).
    const text = await execHttp({ command: ['cat'], stdin: 'héllo\n' });
    expect(text.body).toEqual({ exit_code: 0, stdout: 'héllo\n', stderr: '', truncated: false });
  });

  it('HTTP: invalid base64 and an unknown encoding are 400 invalid_request, and nothing runs', async () => {
    for (const body of [
      { command: ['touch', '/tmp/ran'], stdin: 'not base64!', encoding: 'base64' },
      { command: ['touch', '/tmp/ran'], stdin: 'QUJD', encoding: 'hex' },
      { command: ['touch', '/tmp/ran'], stdin: 'QUJ', encoding: 'base64' },
      { command: ['touch', '/tmp/ran'], stdin: 'QU=D', encoding: 'base64' },
    ]) {
      const r = await execHttp(body);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_request');
      expect(String(r.body.message)).toMatch(
        body.encoding === 'base64' ? /^stdin: not valid base64/ : /^encoding/,
      );
    }
    const ran = await execHttp({ command: ['sh', '-c', 'test -e /tmp/ran && echo ran || echo no'] });
    expect(ran.body.stdout).toBe('no\n');
  });

  it('SDK: execBytes round-trips the bytes; exec with encoding base64 gives the API answer', async () => {
    const r = await sdk.execBytes(lease.id, ['cat'], { stdin: bytes });
    expect(r.exit_code).toBe(0);
    expect(Buffer.from(r.stdout).equals(bytes)).toBe(true);
    const raw = await sdk.exec(lease.id, ['cat'], { stdin: bytes.subarray(0, 3) });
    expect(raw).toMatchObject({ stdout: bytes.subarray(0, 3).toString('base64'), encoding: 'base64' });
  });

  it('CLI: `head -c 100000 /dev/urandom | alacarte exec ID -- cat` writes the same bytes, and the exit code', async () => {
    const home = tempDir('exec-binary-cli');
    await runJson(['wallet', 'topup', '100'], { home, url: node.url });
    const mine = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '10m'], {
      home,
      url: node.url,
    });
    const run = (args: string[], input: Buffer) =>
      new Promise<{ code: number | null; stdout: Buffer; stderr: Buffer }>((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, ...args], {
          env: { ...process.env, ALACARTE_HOME: home, ALACARTE_URL: node.url },
        });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.on('error', reject);
        child.on('close', (code) =>
          resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }),
        );
        child.stdin.on('error', () => {}); // the CLI may stop reading (too much input)
        child.stdin.end(input);
      });
    const cat = await run(['exec', mine.id, '--', 'cat'], bytes);
    expect(cat.code).toBe(0);
    expect(cat.stdout.length).toBe(100_000);
    expect(cat.stdout.equals(bytes)).toBe(true);
    const toErr = await run(['exec', mine.id, '--', 'sh', '-c', 'cat >&2; exit 7'], bytes);
    expect(toErr.code).toBe(7);
    expect(toErr.stdout.length).toBe(0);
    expect(toErr.stderr.equals(bytes)).toBe(true);
    // The same as a shell user types it (the CLI, its node and a scratch directory in bash's environment).
    const shell = {
      env: {
        ...process.env,
        ALACARTE_HOME: home,
        ALACARTE_URL: node.url,
        HOME_DIR: home,
        NODE: process.execPath,
        CLI,
      },
      encoding: 'utf8' as const,
    };
    const piped = spawnSync(
      'bash',
      [
        '-o',
        'pipefail',
        '-c',
        // The input file is written first: cmp may open it before a tee in the pipe had made it.
        `head -c 100000 /dev/urandom >"$HOME_DIR/in.bin" && "$NODE" "$CLI" exec ${mine.id} -- cat <"$HOME_DIR/in.bin" | cmp - "$HOME_DIR/in.bin" && echo same`,
      ],
      shell,
    );
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toBe('same\n');
    // A reader that stops early: the CLI ends as Unix tools do on SIGPIPE (141), no stack trace.
    const early = spawnSync(
      'bash',
      [
        '-c',
        `"$NODE" "$CLI" exec ${mine.id} -- cat <"$HOME_DIR/in.bin" | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`,
      ],
      shell,
    );
    expect(early.stderr).toBe('');
    expect(early.stdout).toBe('141\n');
    // What a renter sees of the lease through the node: the offer's memory, not the host's.
    const offers = (await (await fetch(`${node.url}/v1/offers`)).json()) as {
      offers: Array<{ id: string; memory_mib: number }>;
    };
    const small = offers.offers.find((o) => o.id === 'small');
    const free = await run(['exec', mine.id, '--', 'free', '-m'], Buffer.alloc(0));
    expect(free.stdout.toString()).toMatch(new RegExp(`^Mem:\\s+${small?.memory_mib}\\s`, 'm'));
    // --no-stdin: the command sees end-of-file at once.
    const none = await run(['exec', mine.id, '--no-stdin', '--', 'wc', '-c'], bytes);
    expect(none.stdout.toString().trim()).toBe('0');
    // More than the node takes is refused before anything is sent.
    const big = await run(['exec', mine.id, '--', 'wc', '-c'], randomBytes(1024 * 1024 + 1));
    expect(big.code).not.toBe(0);
    expect(big.stderr.toString()).toContain('stdin is over');
    // A command killed at its time limit says so and how to allow more, not a bare exit 137.
    const slow = await run(['exec', mine.id, '--timeout', '1', '--', 'sleep', '30'], Buffer.alloc(0));
    expect(slow.code).toBe(137);
    expect(slow.stderr.toString()).toBe(
      "alacarte exec: killed after 1 s, the exec's time limit; allow longer with --timeout SECONDS (at most 3600), or run it with --background\n",
    );
    const killed = await run(['exec', mine.id, '--', 'sh', '-c', 'kill -9 $$'], Buffer.alloc(0));
    expect(killed.code).toBe(137);
    expect(killed.stderr.toString()).toBe('');
  });
});
