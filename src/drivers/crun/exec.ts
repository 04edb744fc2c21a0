import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CappedBuffer, streamEnded as ended } from '../capped-output.js';
import { type ExecRequest, type ExecResult, execDeadline } from '../compute-driver.js';
import type { ExecAgent } from './exec-agent.js';
import { FifoOutputs } from './exec-output.js';
import type { OutputDrain } from './output-drain.js';
import { killExecTree, readPid } from './process-tree.js';
import { signalNumber, spawnerShell } from './run-process.js';
import type { Spawner } from './spawner.js';

export interface ExecTarget {
  runtime: string;
  stateDir: string;
  containerId: string;
  /** Where the runtime writes the host pid of the command, so a timeout can kill it. */
  pidFile: string;
  /** The whole environment: the runtime replaces, not extends, the sandbox's when given any. */
  env: string[];
  /** Working directory inside (the image's); the runtime's default, /, when absent. */
  cwd?: string;
  /** The sandbox's cgroup.procs (see cgroup-limits.ts): a timeout kills the command's processes among these. */
  procsFile: string;
  /**
   * Takes the output pipes once the command has exited, so that what it left in the background
   * keeps a reader (output-drain.ts). Without one they are closed.
   */
  drain?: OutputDrain;
  /**
   * The sandbox's exec agent (exec-agent.ts): used when it can take the call, `crun exec` otherwise.
   * Without one (attach's helper calls, sandboxes of a driver without a spawner shell), `crun exec`.
   */
  agent?: ExecAgent;
}

/**
 * crun 1.8 sometimes fails to join a sandbox that has only just started (`setns(...): Operation not
 * permitted`, `fail startup`), before the command exists. Only then, with no pid written for the
 * command, is it safe to simply try again.
 */
const NOT_STARTED = /^(?:(?:setns\(.*\): Operation not permitted|fail startup)\s*)+$/;

/**
 * Runs one command in a running sandbox: through the sandbox's exec agent when it has one that can
 * take the call (exec-agent.ts), else through `crun exec`. Both collect output the same way
 * (exec-output.ts).
 */
export async function execInSandbox(target: ExecTarget, request: ExecRequest): Promise<ExecResult> {
  if (target.agent) {
    const result = await target.agent.exec(target, request);
    if (result) return result;
  }
  for (let attempt = 0; ; attempt++) {
    const result = await execOnce(target, request);
    const neverStarted = !existsSync(target.pidFile) && NOT_STARTED.test(result.stderr.toString('utf8'));
    rmSync(target.pidFile, { force: true });
    if (!neverStarted || attempt >= 4 || result.exitCode === 0) return result;
    await sleep(5 * (attempt + 1));
  }
}

function runtimeArgs(target: ExecTarget, request: ExecRequest): string[] {
  // --no-new-privs: what the sandbox's config gives its init (the runtime's exec leaves it out).
  const args = ['--root', target.stateDir, 'exec', '--no-new-privs', '--pid-file', target.pidFile];
  for (const e of target.env) args.push('--env', e);
  if (target.cwd !== undefined) args.push('--cwd', target.cwd);
  args.push(target.containerId, ...request.command);
  return args;
}

function execOnce(target: ExecTarget, request: ExecRequest): Promise<ExecResult> {
  const spawner = spawnerShell();
  if (spawner) return execPiped(spawner, target, request);
  const child = spawn(target.runtime, runtimeArgs(target, request), { stdio: ['pipe', 'pipe', 'pipe'] });
  const stdout = new CappedBuffer(request.maxOutputBytes);
  const stderr = new CappedBuffer(request.maxOutputBytes);
  child.stdout.on('data', (b: Buffer) => stdout.push(b));
  child.stderr.on('data', (b: Buffer) => stderr.push(b));
  // The command sees end-of-file right after the given input (or at once without one).
  child.stdin.on('error', () => {});
  child.stdin.end(request.stdin);
  let timedOut = false;
  // Killing the runtime alone would leave the command running inside, and killing the command alone
  // its children (`sh -c 'sleep 300 & sleep 300'`): kill every process it started (process-tree.ts).
  const killTree = () => {
    const pid = readPid(target.pidFile);
    if (pid !== undefined) killExecTree(pid, target.procsFile);
  };
  const cancel = execDeadline(request.timeoutMs, request.signal, () => {
    timedOut = true;
    killTree();
    // If the command never started (or the runtime hangs), do not wait for it either.
    setTimeout(() => child.kill('SIGKILL'), 1000).unref();
  });
  return new Promise((resolve, reject) => {
    child.on('error', (e) => {
      cancel();
      reject(e);
    });
    // Resolve when the command exits, not when its output pipes close: a process it left running in
    // the background may hold them open for as long as the sandbox lives.
    child.on('exit', (code, signal) => {
      cancel();
      // The runtime may have written the command's pid only after the first sweep.
      if (timedOut) killTree();
      const finish = () => {
        // Closing the pipes would kill a background job with SIGPIPE at its next write.
        for (const stream of [child.stdout, child.stderr]) {
          if (target.drain) target.drain.keep(stream);
          else stream.destroy();
        }
        resolve({
          exitCode: code ?? 128 + signalNumber(signal),
          stdout: stdout.value(),
          stderr: stderr.value(),
          truncated: stdout.truncated || stderr.truncated,
          timedOut,
        });
      };
      const drained = Promise.all([ended(child.stdout), ended(child.stderr)]);
      const grace = new Promise((r) => setTimeout(r, 100).unref());
      void Promise.race([drained, grace]).then(finish);
    });
  });
}

/** How long after a timeout the runtime itself may take to end before it is killed too. */
const RUNTIME_GRACE_MS = 1000;

/**
 * The same `crun exec`, started by the spawner shell (spawner.ts) instead of a fork of the node,
 * which under load held the node's thread 15 to 25 ms per exec (bench/RESULTS.md). Its output comes
 * through two FIFOs the node reads without blocking (exec-output.ts); its input (bounded by the API)
 * from a file.
 */
async function execPiped(spawner: Spawner, target: ExecTarget, request: ExecRequest): Promise<ExecResult> {
  const [outPath, errPath] = (await spawner.fifos(2)) as [string, string];
  const input =
    request.stdin === undefined || request.stdin.length === 0
      ? undefined
      : spawner.path(`in-${randomBytes(6).toString('hex')}`);
  const cleanUp = () => {
    for (const path of [outPath, errPath, input]) if (path) rmSync(path, { force: true });
  };
  let outputs: FifoOutputs;
  try {
    if (input !== undefined && request.stdin !== undefined)
      await writeFile(input, request.stdin, { mode: 0o600 });
    outputs = new FifoOutputs(outPath, errPath, request.maxOutputBytes);
  } catch (e) {
    cleanUp();
    throw e;
  }
  let timedOut = false;
  let runtimePid: number | undefined;
  let exited = false;
  const killTree = () => {
    const pid = readPid(target.pidFile);
    if (pid !== undefined) killExecTree(pid, target.procsFile);
  };
  const cancel = execDeadline(request.timeoutMs, request.signal, () => {
    timedOut = true;
    killTree();
    // If the command never started (or the runtime hangs), do not wait for it either.
    setTimeout(() => {
      if (!exited && runtimePid !== undefined) {
        try {
          process.kill(runtimePid, 'SIGKILL');
        } catch {
          // ended meanwhile
        }
      }
    }, RUNTIME_GRACE_MS).unref();
  });
  let code: number;
  try {
    code = await spawner.runPiped(
      target.runtime,
      runtimeArgs(target, request),
      { stdin: input, stdout: outPath, stderr: errPath },
      (pid) => {
        runtimePid = pid;
      },
    );
  } catch (e) {
    outputs.destroy();
    throw e;
  } finally {
    exited = true;
    cancel();
    cleanUp();
  }
  // The runtime may have written the command's pid only after the first sweep.
  if (timedOut) killTree();
  return { exitCode: code, ...(await outputs.finish(target.drain)), timedOut };
}
