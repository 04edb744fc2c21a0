import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `alacarte-${prefix}-`));
}

export interface ServedNode {
  url: string;
  mintUrl: string;
  dataDir: string;
  process: ChildProcessWithoutNullStreams;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Every node serveNode started in this test file, for removeServedSandboxes (after the file). */
const served: ServedNode[] = [];

/**
 * After a test file: ends each node serveNode started in it that is still running (SIGKILL), then
 * removes the sandboxes left in its data directory as the next node of that directory would (a
 * crun driver over it: list() cleans up the ended ones, each running one is stopped, close()
 * removes the state and cgroup directories). Sandboxes outlive their node by design, so a test
 * that ends its node with leases running would otherwise leave them running until their deadline
 * and their mounts on the host for good; with hundreds of mounts each new sandbox costs more
 * (crun copies the host's mount table). Registered for every file by test/helpers/after-file.ts.
 */
export async function removeServedSandboxes(): Promise<void> {
  const dirs = new Set<string>();
  for (const node of served.splice(0)) {
    await node.stop('SIGKILL');
    dirs.add(node.dataDir);
  }
  for (const dataDir of dirs) {
    const runtimeDir = join(dataDir, 'sandboxes');
    if (!existsSync(runtimeDir) || readdirSync(runtimeDir).length === 0) continue;
    const { CrunDriver } = await import('../../src/drivers/crun/crun-driver.js');
    const driver = await CrunDriver.create({ runtimeDir, imagesDir: join(dataDir, 'images'), warmLayers: 0 });
    try {
      for (const sandbox of await driver.list()) await driver.stop(sandbox);
    } finally {
      await driver.close();
    }
  }
}

/** Starts the built `alacarte serve` on a free loopback port and waits for its banner. */
export async function serveNode(
  options: { dataDir?: string; env?: NodeJS.ProcessEnv; args?: string[] } = {},
): Promise<ServedNode> {
  const dataDir = options.dataDir ?? tempDir('data');
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--port', '0', '--ssh-port', '0', '--data', dataDir, ...(options.args ?? [])],
    {
      env: { ...process.env, ALACARTE_LOG_LEVEL: 'warn', ...options.env },
    },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`node did not start:\n${out}`)), 30_000);
    const check = () => {
      const m = /listening on (\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    child.stdout.on('data', check);
    child.once('exit', () => {
      clearTimeout(timer);
      rej(new Error(`node exited before listening:\n${out}`));
    });
  });
  const node: ServedNode = {
    url,
    mintUrl: `${url}/mint`,
    dataDir,
    process: child,
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  served.push(node);
  return node;
}
