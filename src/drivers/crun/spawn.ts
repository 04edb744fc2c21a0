import { spawn as spawnChild } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { SandboxProcess } from '../compute-driver.js';
import type { ExecTarget } from './exec.js';
import { inCgroup, killExecTree, readPid } from './process-tree.js';
import { signalNumber } from './run-process.js';
import { CommandOutput } from './spawn-output.js';

/** How often, and how many times, hangup() looks for a command's pid the runtime has not written yet. */
const HANGUP_RETRY_MS = 100;
const HANGUP_TRIES = 20;

/**
 * Starts `command` in the sandbox through `<runtime> exec`, its stdio as streams (ComputeDriver.spawn).
 * The runtime gives the process a session of its own; kill() SIGKILLs that session and every
 * descendant (process-tree.ts), as an exec timeout does; hangup() SIGHUPs the command's process
 * alone. `exited` comes at the command's exit once what it wrote has been read, whatever background
 * job still holds its output (spawn-output.ts: that pipe then goes to `target.drain`). Unlike
 * execInSandbox there is no retry of a runtime that failed to join the sandbox: input may already
 * have been consumed.
 */
export function spawnInSandbox(target: ExecTarget, command: string[]): SandboxProcess {
  // --no-new-privs: what the sandbox's config gives its init (the runtime's exec leaves it out).
  const args = ['--root', target.stateDir, 'exec', '--no-new-privs', '--pid-file', target.pidFile];
  for (const e of target.env) args.push('--env', e);
  if (target.cwd !== undefined) args.push('--cwd', target.cwd);
  args.push(target.containerId, ...command);
  const child = spawnChild(target.runtime, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  // A consumer that stops writing early (the command exited first) must not crash the node.
  child.stdin.on('error', () => {});
  const stdout = new CommandOutput(child.stdout, target.drain);
  const stderr = new CommandOutput(child.stderr, target.drain);
  let commandEnded = false;
  let killed = false;
  let hungUp = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    const pid = readPid(target.pidFile);
    if (pid !== undefined) killExecTree(pid, target.procsFile);
    // The runtime itself, if the command never started or the runtime hangs.
    setTimeout(() => child.kill('SIGKILL'), 1000).unref();
  };
  const hangup = () => {
    if (hungUp) return;
    hungUp = true;
    child.stdin.destroy();
    for (const output of [stdout, stderr]) {
      output.release();
      // What the consumer did not take is dropped, so that the relay ends.
      output.stream.resume();
    }
    // The pid file is written once the command has started: a hangup right after the start waits for it.
    let tries = 0;
    const signal = () => {
      if (commandEnded || killed) return;
      const pid = readPid(target.pidFile);
      if (pid === undefined) {
        if (++tries < HANGUP_TRIES) setTimeout(signal, HANGUP_RETRY_MS).unref();
        return;
      }
      if (!inCgroup(pid, target.procsFile)) return;
      try {
        process.kill(pid, 'SIGHUP');
      } catch {
        // It exited meanwhile.
      }
    };
    signal();
  };
  const exited = new Promise<number>((resolve) => {
    const finish = (code: number) => {
      commandEnded = true;
      rmSync(target.pidFile, { force: true });
      resolve(code);
    };
    child.once('error', () => {
      stdout.release();
      stderr.release();
      finish(127);
    });
    child.once('exit', (code, signal) => {
      // Its pid may be anyone's from now on: never signalled again.
      commandEnded = true;
      const status = code ?? 128 + signalNumber(signal);
      stdout.commandExited();
      stderr.commandExited();
      void Promise.all([stdout.done, stderr.done]).then(() => finish(status));
    });
  });
  return { stdin: child.stdin, stdout: stdout.stream, stderr: stderr.stream, exited, kill, hangup };
}
