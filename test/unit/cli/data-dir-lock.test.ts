import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDataDir } from '../../../src/cli/data-dir-lock.js';
import { ConfigError } from '../../../src/config.js';

const dataDir = () => mkdtempSync(join(tmpdir(), 'alacarte-lock-'));

/** The pid of a process that has exited (and was reaped): nothing runs under it right now. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

describe('lockDataDir', () => {
  it('takes a free directory, refuses a second taker naming dir, pid and --data, frees it on release', () => {
    const dir = dataDir();
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toMatch(new RegExp(`^${process.pid} \\d+\\n$`));
    let refused: unknown;
    try {
      lockDataDir(dir);
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toContain(
      `data directory ${dir} is in use by another alacarte node (pid ${process.pid},`,
    );
    expect((refused as Error).message).toContain('--data DIR');
    lock.release();
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    lockDataDir(dir).release();
  });

  it('takes over the lock of a process that is gone', () => {
    const dir = dataDir();
    writeFileSync(join(dir, LOCK_FILE), `${deadPid()} 12345\n`);
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    lock.release();
  });

  it('takes over a lock whose pid now belongs to another process (start time differs)', () => {
    const dir = dataDir();
    // This process's pid, but a start time it never had: the pid was reused after a kill -9.
    writeFileSync(join(dir, LOCK_FILE), `${process.pid} 1\n`);
    lockDataDir(dir).release();
  });

  it('does not release a lock another process has taken since', () => {
    const dir = dataDir();
    const lock = lockDataDir(dir);
    writeFileSync(join(dir, LOCK_FILE), '1 1\n');
    lock.release();
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe('1 1\n');
  });
});
