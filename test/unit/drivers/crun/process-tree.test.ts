import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { procStat } from '../../../../src/drivers/crun/process-tree.js';

describe('procStat', () => {
  it('reads ppid, group and session after the command name, whatever that name holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-proc-'));
    // A process may name itself anything: here `a) Z 1 1 1`, which a naive split would misread.
    const file = join(dir, 'a) Z 1 1 1');
    writeFileSync(file, '#!/bin/sh\nread x\n');
    chmodSync(file, 0o755);
    const child = spawn(file, [], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const s = procStat(child.pid ?? 0);
      expect(s).toMatchObject({ pid: child.pid, ppid: process.pid });
      expect(s?.state).not.toBe('Z');
      expect(s?.session).toBe(procStat(process.pid)?.session);
      expect(procStat(2 ** 30)).toBeUndefined();
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
