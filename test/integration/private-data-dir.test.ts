import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Amount } from '../../src/core/amount.js';
import { DEFAULT_MOUNT_ROOT } from '../../src/drivers/crun/host-dirs.js';
import { mountsUnder } from '../../src/drivers/crun/mounts.js';
import { Alacarte } from '../../src/sdk/client.js';
import { LocalWallet } from '../../src/wallet/local-wallet.js';
import { removeServedSandboxes, type ServedNode, serveNode, tempDir } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

/**
 * `alacarte serve` with its data directory inside a private directory (mode 0700, like root's
 * home or a fresh `mktemp -d`): sandboxes mount as an unprivileged id and could not pass through
 * it. The node keeps what they mount under /var/lib/alacarte/<hash> and links it from the data
 * directory; a lease runs. Needs `npm run build`.
 */
const privateDir = tempDir('private');
const dataDir = join(privateDir, 'data');
const placed = () =>
  join(DEFAULT_MOUNT_ROOT, createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 16));
let node: ServedNode | undefined;
const wallets: LocalWallet[] = [];

afterAll(async () => {
  for (const w of wallets) w.close();
  await node?.stop();
  // Sandboxes outlive their node by design: removed through a driver over the data directory (as
  // the next node would) before the directories go, never by deleting through a mounted layer.
  await removeServedSandboxes();
  if (existsSync(dataDir)) rmSync(placed(), { recursive: true, force: true });
  rmSync(privateDir, { recursive: true, force: true });
});

describe('a node whose data directory is in a private directory', { timeout: 180_000 }, () => {
  it('starts, runs a lease, and keeps its images across a restart', async () => {
    expect(statSync(privateDir).mode & 0o777).toBe(0o700);
    // A fixed port: the wallet's ecash names the mint URL, which must stay the same across the restart.
    const port = await freePort();
    node = await serveNode({ dataDir, args: ['--port', String(port)] });
    expect(node.output()).not.toContain('must be searchable');
    // The first start says what it prepares rather than sitting silent.
    expect(node.output()).toContain('alacarte: checking the host and preparing images…');

    // What sandboxes mount lives where they can reach it, linked from the data directory.
    for (const name of ['images', 'sandboxes']) {
      const link = join(dataDir, name);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(join(placed(), name));
    }
    expect(existsSync(join(dataDir, 'images', 'busybox', 'bin', 'sh'))).toBe(true);
    expect(statSync(privateDir).mode & 0o777).toBe(0o700);

    const wallet = LocalWallet.open({ home: tempDir('private-wallet') });
    wallets.push(wallet);
    const topup = await wallet.createTopup(node.mintUrl, Amount.of(200));
    await wallet.completeTopup(topup.opId);
    const sdk = new Alacarte({ url: node.url, wallet });
    const lease = await sdk.rent({ offer: 'small', seconds: 600, image: 'busybox' });
    expect(lease.state).toBe('running');
    const hi = await sdk.exec(lease.id, ['sh', '-c', 'echo hi; cat /run/alacarte/lease.json']);
    expect(hi.exit_code).toBe(0);
    expect(hi.stdout).toContain('hi\n');
    expect(hi.stdout).toContain(lease.id);
    expect((await sdk.stop(lease.id)).state).toBe('stopped');

    // A restart finds everything where it was (the links and the image persist). The stop before
    // it is whole: said so, and nothing it made ahead is left mounted.
    expect(await node.stop()).toBe(0);
    expect(node.output()).toContain('alacarte: stopped');
    expect(mountsUnder(placed())).toEqual([]);
    node = await serveNode({ dataDir, args: ['--port', String(port)] });
    const after = new Alacarte({ url: node.url, wallet });
    const again = await after.rent({ offer: 'small', seconds: 600, image: 'busybox' });
    expect((await after.exec(again.id, ['echo', 'again'])).stdout).toBe('again\n');
    await after.stop(again.id);
  });
});
