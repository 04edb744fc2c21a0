import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError } from './image-store.js';
import { signalNumber } from './run-process.js';

/** Called with each line a long-running image tool prints (skopeo, umoci, mmdebstrap). */
export type ProgressSink = (line: string) => void;

/**
 * Runs an image tool to completion, passing each line it prints to `progress` (so a build that
 * takes a minute is never silent) and keeping the last few lines for the error message.
 * Resolves with the exit code and those last lines.
 */
export function runTool(
  file: string,
  args: readonly string[],
  progress: ProgressSink,
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const tail: string[] = [];
    const lines = (stream: NodeJS.ReadableStream) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (partial + chunk).split(/\r?\n|\r/);
        partial = parts.pop() ?? '';
        // A tool that never prints a newline must not grow us either.
        if (partial.length > 4096) partial = partial.slice(-4096);
        for (const line of parts) emit(line);
      });
      stream.on('end', () => partial && emit(partial));
    };
    const emit = (line: string) => {
      const text = line.trimEnd();
      if (!text) return;
      tail.push(text.slice(0, 500));
      if (tail.length > 8) tail.shift();
      progress(text);
    };
    lines(child.stdout);
    lines(child.stderr);
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? 128 + signalNumber(signal), tail: tail.join('\n') }),
    );
  });
}

/** The path of a Debian tool, or an ImageError naming the package that provides it. */
export function requireTool(name: string, debianPackage: string): string {
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  throw new ImageError(`${name} is not installed: apt-get install ${debianPackage} (scripts/setup.sh does)`);
}
