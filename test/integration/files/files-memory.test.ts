import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { Alacarte } from '../../../src/sdk/client.js';
import { LocalWallet } from '../../../src/wallet/local-wallet.js';
import { type ServedNode, serveNode, tempDir } from '../../helpers/cli.js';

/**
 * A node in its own process (`alacarte serve`, built), so that its memory is its own: a transfer of
 * 128 MiB each way must not grow it by the file's size. Not timed; it samples the node's RSS, which
 * also holds garbage not yet collected (V8 frees socket and pipe buffers in batches: ~30 MiB here,
 * 64 MiB once on a loaded CI host, where collection lags), so the bound is three quarters of the
 * file: a node that held the file, either way, would grow by at least all of it.
 */
const MiB = 1024 * 1024;
const SIZE_MIB = 128;
let node: ServedNode;
let wallet: LocalWallet;

beforeAll(async () => {
  node = await serveNode({ dataDir: tempDir('files-mem') });
  wallet = LocalWallet.open({ home: tempDir('files-mem-home') });
  const topup = await wallet.createTopup(node.mintUrl, Amount.of(100));
  await wallet.completeTopup(topup.opId);
}, 120_000);
afterAll(async () => {
  wallet?.close();
  await node?.stop();
});

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

function* repeat(chunk: Buffer, times: number): Generator<Buffer> {
  for (let i = 0; i < times; i++) yield chunk;
}

describe('files: streamed, not held', () => {
  it("moves 128 MiB up and down without the node's memory growing by the file's size", async () => {
    const sdk = new Alacarte({ url: node.url, wallet });
    const lease = await sdk.rent({ offer: 'small', seconds: 600, image: 'busybox' });
    const pid = node.process.pid ?? 0;
    const chunk = randomBytes(MiB);
    const expected = createHash('sha256');
    for (let i = 0; i < SIZE_MIB; i++) expected.update(chunk);
    // A first small transfer, so that what any transfer costs once (code, pools) is in the base.
    await sdk.files.write(lease.id, '/root/warm', randomBytes(MiB));
    await (await sdk.files.read(lease.id, '/root/warm')).bytes();
    const base = rssOf(pid);
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 10);
    try {
      const up = await sdk.files.write(lease.id, '/root/big.bin', Readable.from(repeat(chunk, SIZE_MIB)), {
        size: SIZE_MIB * MiB,
      });
      expect(up.size).toBe(SIZE_MIB * MiB);
      const down = await sdk.files.read(lease.id, '/root/big.bin');
      const got = createHash('sha256');
      for await (const part of down.stream) got.update(part as Buffer);
      expect(got.digest('hex')).toBe(expected.digest('hex'));
    } finally {
      clearInterval(sampler);
    }
    const grew = peak - base;
    console.log(`${SIZE_MIB} MiB up and down: the node's RSS grew by ${(grew / MiB).toFixed(1)} MiB at most`);
    expect(grew).toBeLessThan(((SIZE_MIB * 3) / 4) * MiB);
    await sdk.stop(lease.id);
  }, 120_000);
});
