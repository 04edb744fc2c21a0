import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Spawner } from './spawner.js';

export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

let shared: Spawner | undefined;

/**
 * From now on, runProcess and runDetached run their programs through one long-lived busybox shell
 * of this process (spawner.ts), so that no fork of the node holds its event loop. The crun driver
 * calls this with its static busybox; calling it again changes nothing.
 */
export function useSpawnerShell(busybox: string): void {
  shared ??= new Spawner(busybox);
}

/** The spawner shell of this process, once useSpawnerShell was called. */
export function spawnerShell(): Spawner | undefined {
  return shared;
}

/**
 * Runs a host program to completion. stdin is closed; output is kept up to a small cap, since it is
 * only ever read for error messages and short JSON answers.
 */
export function runProcess(
  file: string,
  args: readonly string[],
  maxOutput = 1 << 20,
): Promise<ProcessResult> {
  if (shared) return shared.run(file, args, maxOutput);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout.on('data', (b: Buffer) => {
      if (outLen < maxOutput) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < maxOutput) err.push(b);
      errLen += b.length;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({
        code: code ?? 128 + signalNumber(signal),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** 128 + n is how shells report a death by signal n. */
export function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (constants.signals[signal] ?? 1) : 0;
}

/** Runs a host program to its end with no stdio at all (a created container keeps what it got); resolves with its exit status. */
export async function runDetached(file: string, args: readonly string[]): Promise<number> {
  if (shared) return (await shared.run(file, args, 0, true)).code;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolvePromise(code ?? 128 + signalNumber(signal)));
  });
}
