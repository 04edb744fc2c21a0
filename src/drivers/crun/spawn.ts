import { spawn as spawnChild } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { SandboxProcess } from '../compute-driver.js';
import type { ExecTarget } from './exec.js';
import { killExecTree, readPid } from './process-tree.js';
import { signalNumber } from './run-process.js';

/** How long output may stay silent after the command exited before a holder of its pipe is cut off. */
const QUIET_AFTER_EXIT_MS = 150;

/**
 * Resolves once `stream` has ended, or has been quiet with nothing buffered for QUIET_AFTER_EXIT_MS
 * (then it is destroyed). Called after the command exited: what is still in the pipe arrives, at the
 * consumer's pace (a stream the consumer has not drained holds bytes, so it is never cut short), but
 * a background process the command left holding the pipe does not keep it open for ever.
 */
function settle(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let heard = true;
    const onData = () => {
      heard = true;
    };
    const done = () => {
      clearInterval(timer);
      stream.off('data', onData);
      resolve();
    };
    stream.on('data', onData).once('end', done).once('close', done);
    const timer = setInterval(() => {
      if (!heard && stream.readableLength === 0) {
        stream.destroy();
        done();
      }
      heard = false;
    }, QUIET_AFTER_EXIT_MS);
  });
}

/**
 * Starts `command` in the sandbox through `<runtime> exec`, its stdio as streams (ComputeDriver.spawn).
 * The runtime gives the process a session of its own; kill() SIGKILLs that session and every
 * descendant (process-tree.ts), as an exec timeout does. Unlike execInSandbox there is no retry of a
 * runtime that failed to join the sandbox: input may already have been consumed.
 */
export function spawnInSandbox(target: ExecTarget, command: string[]): SandboxProcess {
  const args = ['--root', target.stateDir, 'exec', '--pid-file', target.pidFile];
  for (const e of target.env) args.push('--env', e);
  args.push(target.containerId, ...command);
  const child = spawnChild(target.runtime, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  // A consumer that stops writing early (the command exited first) must not crash the node.
  child.stdin.on('error', () => {});
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    const pid = readPid(target.pidFile);
    if (pid !== undefined) killExecTree(pid, target.procsFile);
    // The runtime itself, if the command never started or the runtime hangs.
    setTimeout(() => child.kill('SIGKILL'), 1000).unref();
  };
  const exited = new Promise<number>((resolve) => {
    const finish = (code: number) => {
      rmSync(target.pidFile, { force: true });
      resolve(code);
    };
    child.once('error', () => finish(127));
    child.once('exit', (code, signal) => {
      const status = code ?? 128 + signalNumber(signal);
      void Promise.all([settle(child.stdout), settle(child.stderr)]).then(() => finish(status));
    });
  });
  return { stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, exited, kill };
}
