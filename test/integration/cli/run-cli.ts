import { spawn } from 'node:child_process';
import { CLI } from '../../helpers/cli.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `alacarte` with its own $ALACARTE_HOME and node URL, as a user would. */
export function runCli(
  args: string[],
  env: { home: string; url: string },
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ALACARTE_HOME: env.home, ALACARTE_URL: env.url, ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Runs it and parses its --json output, failing loudly with stderr when it did not succeed. */
export async function runJson<T = Record<string, unknown>>(
  args: string[],
  env: { home: string; url: string },
): Promise<T> {
  const r = await runCli([...args, '--json'], env);
  if (r.code !== 0) throw new Error(`alacarte ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
