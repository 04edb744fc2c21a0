import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

export class WalletBusyError extends Error {
  constructor(readonly holder: number) {
    super(`the wallet is in use by another alacarte process (pid ${holder})`);
    this.name = 'WalletBusyError';
  }
}

/**
 * An exclusive lock file holding the owner's pid. Two processes spending from one wallet file
 * would select the same proofs; the lock keeps them apart. A lock whose owner died (kill -9) is
 * taken over: the wallet's own crash recovery makes that safe.
 */
export class FileLock {
  private constructor(private readonly path: string) {}

  /** Takes the lock, waiting up to `waitMs` for a live holder to let go (a CLI command is short). */
  static acquireWaiting(
    path: string,
    waitMs: number,
    isAlive: (pid: number) => boolean = processAlive,
  ): FileLock {
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        return FileLock.acquire(path, isAlive);
      } catch (err) {
        if (!(err instanceof WalletBusyError) || Date.now() >= deadline) throw err;
        // Opening a wallet is synchronous; a short blocking pause keeps it so.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      }
    }
  }

  static acquire(path: string, isAlive: (pid: number) => boolean = processAlive): FileLock {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return new FileLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readHolder(path);
      if (holder !== undefined && holder !== process.pid && isAlive(holder))
        throw new WalletBusyError(holder);
      try {
        unlinkSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    throw new WalletBusyError(readHolder(path) ?? 0);
  }

  release(): void {
    try {
      if (readHolder(this.path) === process.pid) unlinkSync(this.path);
    } catch {
      // already gone: nothing to release
    }
  }
}

function readHolder(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
