import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { Alacarte } from '../../../src/sdk/client.js';
import { AlacarteApiError } from '../../../src/sdk/errors.js';
import { LocalWallet } from '../../../src/wallet/local-wallet.js';
import { CLI, tempDir } from '../../helpers/cli.js';
import { type LeaseTestNode, startLeaseNode } from '../../helpers/lease-node.js';
import { tarMembers, tarOf } from '../../helpers/tar.js';
import { runCli } from '../cli/run-cli.js';

const MiB = 1024 * 1024;
// Room for the 64 MiB transfer: the writable layer is a tmpfs held in the sandbox's memory.
const offer = {
  id: 'roomy',
  vcpu: 1,
  memory_mib: 256,
  pids: 64,
  disk_mib: 128,
  price: { amount_per_hour: 60, unit: 'sat' as const },
};

let t: LeaseTestNode;
let wallet: LocalWallet;
let sdk: Alacarte;
let home: string;
let leaseId: string;

beforeAll(async () => {
  t = await startLeaseNode({ offers: [offer] });
  home = tempDir('files-home');
  wallet = LocalWallet.open({ home });
  const topup = await wallet.createTopup(t.mintUrl, Amount.of(100));
  await wallet.completeTopup(topup.opId);
  sdk = new Alacarte({ url: t.url, wallet });
  leaseId = (await sdk.rent({ offer: 'roomy', seconds: 900, image: 'busybox' })).id;
}, 90_000);
afterAll(async () => {
  wallet?.close();
  await t?.close();
});

function* repeat(chunk: Buffer, times: number): Generator<Buffer> {
  for (let i = 0; i < times; i++) yield chunk;
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('files through the SDK', () => {
  it('writes 1 MiB of random bytes and reads them back byte for byte', async () => {
    const data = randomBytes(MiB);
    expect(await sdk.files.write(leaseId, '/root/sdk.bin', data, { mode: '0600' })).toEqual({
      path: '/root/sdk.bin',
      size: MiB,
    });
    const read = await sdk.files.read(leaseId, '/root/sdk.bin');
    expect(read.kind).toBe('file');
    expect((await read.bytes()).equals(data)).toBe(true);
    const stat = await sdk.exec(leaseId, ['stat', '-c', '%a %U', '/root/sdk.bin']);
    expect(stat.stdout).toBe('600 root\n');
    // A Node stream with its length.
    const streamed = await sdk.files.write(leaseId, '/root/streamed.bin', Readable.from([data]), {
      size: data.length,
    });
    expect(streamed.size).toBe(MiB);
    expect(sha(await (await sdk.files.read(leaseId, '/root/streamed.bin')).bytes())).toBe(sha(data));
  });

  it('sends a directory as tar and gets it back as tar; errors carry the API codes', async () => {
    await sdk.files.write(leaseId, '/opt/app', tarOf([{ name: 'bin/tool', content: 'T', mode: 0o755 }]), {
      tar: true,
    });
    const read = await sdk.files.read(leaseId, '/opt/app');
    expect(read.kind).toBe('directory');
    const members = tarMembers(await read.bytes()).map((m) => m.name);
    expect(members).toContain('./bin/tool');
    const missing = await sdk.files.read(leaseId, '/nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(AlacarteApiError);
    expect(missing).toMatchObject({ code: 'not_found', status: 404 });
    const tooBig = await sdk.files
      .write(leaseId, '/root/big', Readable.from(repeat(Buffer.alloc(MiB), 129)), { size: 129 * MiB })
      .catch((e: unknown) => e);
    expect(tooBig).toMatchObject({ code: 'payload_too_large', status: 413 });
  });
});

describe('alacarte cp', { timeout: 120_000 }, () => {
  const env = () => ({ home, url: t.url });

  it('copies a 1 MiB random file into the sandbox and back, byte for byte', async () => {
    expect(existsSync(CLI), 'run `npm run build` first').toBe(true);
    const dir = tempDir('cp');
    const data = randomBytes(MiB);
    writeFileSync(join(dir, 'up.bin'), data);
    chmodSync(join(dir, 'up.bin'), 0o750);
    const up = await runCli(['cp', join(dir, 'up.bin'), `${leaseId}:/root/incoming/`], env());
    expect(up).toMatchObject({
      code: 0,
      stdout: `copied ${MiB} bytes to ${leaseId}:/root/incoming/up.bin\n`,
    });
    expect((await sdk.exec(leaseId, ['stat', '-c', '%a', '/root/incoming/up.bin'])).stdout).toBe('750\n');
    // Onto a directory of the sandbox named without its /: into it, under its own name, as scp.
    writeFileSync(join(dir, 'again.txt'), 'again\n');
    const into = await runCli(['cp', join(dir, 'again.txt'), `${leaseId}:/root/incoming`], env());
    expect(into).toMatchObject({
      code: 0,
      stdout: `copied 6 bytes to ${leaseId}:/root/incoming/again.txt\n`,
    });
    expect((await sdk.exec(leaseId, ['cat', '/root/incoming/again.txt'])).stdout).toBe('again\n');
    const down = await runCli(['cp', `${leaseId}:/root/incoming/up.bin`, join(dir, 'down.bin')], env());
    expect(down.code, down.stderr).toBe(0);
    expect(readFileSync(join(dir, 'down.bin')).equals(data)).toBe(true);
    // Into an existing directory: under the source's name. To stdout with `-`.
    expect((await runCli(['cp', `${leaseId}:/root/incoming/up.bin`, dir], env())).code).toBe(0);
    expect(readFileSync(join(dir, 'up.bin')).equals(data)).toBe(true);
    await sdk.files.write(leaseId, '/root/hello.txt', 'hello from the sandbox\n');
    const out = await runCli(['cp', `${leaseId}:hello.txt`, '-'], env());
    expect(out).toMatchObject({ code: 0, stdout: 'hello from the sandbox\n' });
  });

  it('copies a directory tree both ways (like scp -r), and says what went wrong', async () => {
    const dir = tempDir('cp-tree');
    mkdirSync(join(dir, 'site/css'), { recursive: true });
    writeFileSync(join(dir, 'site/index.html'), '<h1>hi</h1>');
    writeFileSync(join(dir, 'site/css/a.css'), 'body{}');
    writeFileSync(join(dir, 'site/run.sh'), '#!/bin/sh\necho served\n', { mode: 0o755 });
    const up = await runCli(['cp', join(dir, 'site'), `${leaseId}:/srv/www`], env());
    expect(up.code, up.stderr).toBe(0);
    // Its size is the archive's, not the files' (29 bytes here): the line says which it is.
    expect(up.stdout).toMatch(
      new RegExp(`^copied a directory \\(a tar archive of \\d+ bytes\\) to ${leaseId}:/srv/www/\n$`),
    );
    expect((await sdk.exec(leaseId, ['sh', '-c', 'cat /srv/www/css/a.css; /srv/www/run.sh'])).stdout).toBe(
      'body{}served\n',
    );
    const back = join(dir, 'back');
    mkdirSync(back);
    const down = await runCli(['cp', `${leaseId}:/srv/www`, back], env());
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(/^copied a directory \(a tar archive of \d+ bytes\) to .+\/www\/\n$/);
    expect(readFileSync(join(back, 'www/index.html'), 'utf8')).toBe('<h1>hi</h1>');
    expect(readFileSync(join(back, 'www/css/a.css'), 'utf8')).toBe('body{}');
    expect(statSync(join(back, 'www/run.sh')).mode & 0o777).toBe(0o755);

    const missing = await runCli(['cp', `${leaseId}:/no/such`, join(dir, 'x')], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/does not exist \(not_found\)/);
    expect(existsSync(join(dir, 'x'))).toBe(false);
    const usage = await runCli(['cp', join(dir, 'site'), join(dir, 'other')], env());
    expect(usage.code).toBe(2);

    // Local mistakes name the path as typed, not Node's "ENOENT: …, stat '…'" nor a temporary file.
    const noLocal = await runCli(['cp', join(dir, 'nope.txt'), `${leaseId}:/root/`], env());
    expect(noLocal.code).toBe(2);
    expect(noLocal.stderr).toContain(
      `alacarte cp: ${join(dir, 'nope.txt')}: no such local file or directory`,
    );
    expect(noLocal.stderr).not.toMatch(/ENOENT/);
    const noDir = await runCli(['cp', `${leaseId}:/srv/www/index.html`, join(dir, 'no/such/x')], env());
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toContain(`alacarte cp: ${join(dir, 'no/such')}: no such local directory`);
    expect(noDir.stderr).not.toMatch(/ENOENT|\.part/);
    // A path the sandbox refuses gets no hint about offers and images.
    const refused = await runCli(
      ['cp', join(dir, 'site/index.html'), `${leaseId}:/srv/www/index.html/x`],
      env(),
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^alacarte cp: .+\(invalid_request\)$/m);
    expect(refused.stderr).not.toContain('alacarte offers');
  });
});
