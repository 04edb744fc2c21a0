import { spawn } from 'node:child_process';

/** How a program ended: its exit code (null when killed by a signal) and all it wrote. */
export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `program` with `args` to its end, collecting its stdout and stderr as text. `input` is
 * written to its stdin, which is then closed (empty when not given, so nothing waits on a
 * terminal); `env` is added over this process's environment. With `timeoutMs` it is killed
 * (SIGKILL) after that long, and its code is null. Rejects only when it cannot be started.
 */
export function runProcess(
  program: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}
