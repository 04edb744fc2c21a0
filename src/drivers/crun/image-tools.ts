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
 * Resolves with the exit code and those last lines (`tail`).
 *
 * With `errorsOnStderr` (tools that report progress on stdout and problems on stderr: skopeo,
 * umoci), stderr's lines are held back instead: on success they go to `progress` at the end (a
 * warning is still seen), on failure only `tail` has them, so an error message made from it is
 * the one place the tool's words appear (shown live as well, they would be printed twice).
 */
export function runTool(
  file: string,
  args: readonly string[],
  progress: ProgressSink,
  env?: NodeJS.ProcessEnv,
  options: { errorsOnStderr?: boolean } = {},
): Promise<{ code: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const tail: string[] = [];
    const held: string[] = [];
    const keep = (list: string[], text: string) => {
      list.push(text.slice(0, 500));
      if (list.length > 8) list.shift();
    };
    const lines = (stream: NodeJS.ReadableStream, emit: (line: string) => void) => {
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
    const live = (line: string) => {
      const text = line.trimEnd();
      if (!text) return;
      keep(tail, text);
      progress(text);
    };
    const hold = (line: string) => {
      const text = line.trimEnd();
      if (text) keep(held, text);
    };
    lines(child.stdout, live);
    lines(child.stderr, options.errorsOnStderr ? hold : live);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const status = code ?? 128 + signalNumber(signal);
      if (status === 0) for (const line of held) progress(line);
      // A failure's own words, when the tool gave any on stderr; else what it printed last.
      resolve({ code: status, tail: (held.length > 0 ? held : tail).join('\n') });
    });
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
