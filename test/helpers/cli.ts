import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
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
  return {
    url,
    mintUrl: `${url}/mint`,
    dataDir,
    process: child,
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
