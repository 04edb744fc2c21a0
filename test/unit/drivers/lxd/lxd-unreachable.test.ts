import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../../src/config.js';
import { lxdDriverFromConfig } from '../../../../src/drivers/lxd/lxd-from-config.js';
import { silentLogger } from '../../../../src/log.js';

/** `ALACARTE_DRIVER=lxd alacarte serve` on a machine where no LXD daemon runs. */
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the LXD driver without an LXD daemon', () => {
  it('says that no LXD answers at the socket and what to do, not a bare connect ENOENT', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lxd-none-'));
    dirs.push(dir);
    const socket = join(dir, 'unix.socket');
    const config = loadConfig({ env: {}, flags: { dataDir: dir, driver: { kind: 'lxd', socket } } });
    const failure = await lxdDriverFromConfig(config, silentLogger()).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(failure?.message).toBe(
      `no LXD daemon answers at unix socket ${socket} (ENOENT): install and initialise LXD ` +
        '(README, "Scaling out: LXD"), point driver.socket or driver.url at it, or leave the driver at crun, the default',
    );
  });
});
