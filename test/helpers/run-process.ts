import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';

/** How a program ended: its exit code (null when killed by a signal) and all it wrote. */
export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Types into a running program's stdin, seeing what it has written to stdout so far; its stdin is
 * closed once the returned promise resolves.
 */
export type Typing = (stdin: Writable, stdout: () => string) => Promise<void>;

/**
 * Runs `program` with `args` to its end, collecting its stdout and stderr as text. `input` is
 * written to its stdin, which is then closed (empty when not given, so nothing waits on a
 * terminal); or, for a shell on a terminal that must answer before it is sent more, `typing` writes
 * it (test/helpers/terminal.ts). `env` is added over this process's environment. With `timeoutMs`
 * it is killed (SIGKILL) after that long, and its code is null. Rejects when it cannot be started,
 * or (after killing it) with the error of a `typing` that failed.
 */
export function runProcess(
  program: string,
  args: string[],
  options: { input?: string; typing?: Typing; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
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
    let typingFailed: { err: unknown } | undefined;
    child.once('close', (code) => {
      clearTimeout(timer);
      if (typingFailed) reject(typingFailed.err);
      else resolve({ code, stdout, stderr });
    });
    // A program that ends before it reads all (or any) of its input: EPIPE is no failure of its.
    child.stdin.on('error', () => undefined);
    if (!options.typing) {
      child.stdin.end(options.input ?? '');
      return;
    }
    options
      .typing(child.stdin, () => stdout)
      .then(
        () => child.stdin.end(),
        (err: unknown) => {
          typingFailed = { err };
          child.kill('SIGKILL');
        },
      );
  });
}
