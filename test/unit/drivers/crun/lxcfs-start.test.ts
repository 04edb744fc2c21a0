import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureLxcfs } from '../../../../src/drivers/crun/lxcfs.js';

/** When lxcfs cannot run, the driver goes on without it and says why (sandboxes still start). */
describe('ensureLxcfs without a working lxcfs', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const setup = () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-lxcfs-unit-'));
    dirs.push(dir);
    const warnings: string[] = [];
    return {
      dir: join(dir, 'm'),
      warnings,
      logger: { info: () => {}, warn: (m: string) => warnings.push(m) },
    };
  };

  it('a program that does not exist: undefined and a warning', async () => {
    const { dir, warnings, logger } = setup();
    const found = await ensureLxcfs({
      dir,
      logger,
      program: join(dir, 'no-such-lxcfs'),
      mountinfo: () => '',
      waitMs: 300,
    });
    expect(found).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/lxcfs did not mount at .*host's memory and CPUs/);
  });

  it('a program that exits without mounting (as without /dev/fuse): undefined and a warning', async () => {
    const { dir, warnings, logger } = setup();
    const found = await ensureLxcfs({ dir, logger, program: '/bin/false', mountinfo: () => '', waitMs: 300 });
    expect(found).toBeUndefined();
    expect(warnings).toHaveLength(1);
  });
});
