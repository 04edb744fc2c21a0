import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeRequest } from '../../../src/drivers/crun/exec-agent.js';
import { NATIVE_AGENT_BUILD } from '../../../src/drivers/crun/host-setup.js';

/**
 * The native exec agent (native/exec-agent.c) on its own, outside any sandbox: its protocol's
 * FIFOs in a temporary run directory, requests written as the node writes them. What an exec whose
 * request cannot be run sees: its exit status and, on its own stderr, why (a request the agent
 * could not read or parse ended 126 with nothing said).
 */
const skip = existsSync(NATIVE_AGENT_BUILD) ? undefined : 'the native agent is not built (scripts/setup.sh)';

/** One agent on its own run directory, and the answers it wrote. */
interface RunningAgent {
  dir: string;
  process: ChildProcess;
  answers: () => string;
}

const agents: RunningAgent[] = [];
const spawned: ChildProcess[] = [];
/** The `cat`s reading exec FIFOs, killed once read (or in afterAll, should a test fail first). */
const readers: ChildProcess[] = [];
const cgroups: string[] = [];

/** Starts an agent on a new run directory (its FIFOs made as a sandbox's init makes them). */
function startAgent(): RunningAgent {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-agent-'));
  mkdirSync(join(dir, 'x'));
  execFileSync('mkfifo', [join(dir, 'exec-in'), join(dir, 'agent-out')]);
  const agent = spawn(NATIVE_AGENT_BUILD, [dir], { stdio: 'ignore' });
  // The agent holds its answer FIFO read-write: `cat` reads it for as long as the test runs.
  const answerReader = spawn('cat', [join(dir, 'agent-out')], { stdio: ['ignore', 'pipe', 'ignore'] });
  let answers = '';
  answerReader.stdout?.on('data', (chunk: Buffer) => {
    answers += chunk.toString();
  });
  spawned.push(agent, answerReader);
  const running = { dir, process: agent, answers: () => answers };
  agents.push(running);
  return running;
}

let agent: RunningAgent;

beforeAll(() => {
  if (!skip) agent = startAgent();
});

afterAll(() => {
  for (const p of [...spawned, ...readers]) p.kill('SIGKILL');
  for (const a of agents) rmSync(a.dir, { recursive: true, force: true });
  for (const c of cgroups) {
    try {
      rmdirSync(c);
    } catch {
      // its processes were killed a moment ago: the next run's cleanup of the host removes it
    }
  }
});

/** Runs one exec whose request file holds `request`; its status and what its stdout and stderr got. */
async function execWith(
  id: string,
  request: Buffer | string,
  on: RunningAgent = agent,
): Promise<{ status: string; stdout: string; stderr: string }> {
  const base = join(on.dir, 'x', id);
  execFileSync('mkfifo', [`${base}.out`, `${base}.err`]);
  writeFileSync(base, request);
  // `cat` opens each FIFO (blocking until the agent does) and reads it to its end: no thread of
  // this process waits on a FIFO that may never be opened.
  const read = (path: string) =>
    new Promise<string>((resolve) => {
      const cat = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'ignore'] });
      readers.push(cat);
      let text = '';
      cat.stdout.on('data', (c: Buffer) => {
        text += c.toString();
      });
      cat.on('close', () => resolve(text));
    });
  const stdout = read(`${base}.out`);
  const stderr = read(`${base}.err`);
  const status = await send(on, id);
  // A request that never opened stdout leaves its reader waiting: the status is what counts then.
  const opened = await Promise.race([
    stdout,
    new Promise<string>((r) => setTimeout(() => r('(never opened)'), 500)),
  ]);
  return { status, stdout: opened, stderr: await stderr };
}

/** Tells `on` to run exec `id`; its status once the agent has answered it (10 s at most). */
async function send(on: RunningAgent, id: string): Promise<string> {
  const requests = openSync(join(on.dir, 'exec-in'), 'w');
  writeFileSync(requests, `${id}\n`);
  closeSync(requests);
  return new Promise<string>((resolve, reject) => {
    const give = Date.now() + 10_000;
    const look = () => {
      const m = new RegExp(`^${id} (\\d+)$`, 'm').exec(on.answers());
      if (m) return resolve(m[1] ?? '');
      if (Date.now() > give) return reject(new Error(`no status for ${id}: ${on.answers()}`));
      setTimeout(look, 10);
    };
    look();
  });
}

/**
 * Puts `pid` alone in a new pids cgroup allowing `max` processes (cgroup v1's pids hierarchy, or
 * v2 where the root delegates pids); undefined where this host has neither.
 */
function pidsCgroup(pid: number, max: number): string | undefined {
  const v1 = '/sys/fs/cgroup/pids';
  const v2 = '/sys/fs/cgroup';
  const controllers = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split(/\s+/) : []);
  const root = existsSync(join(v1, 'cgroup.procs'))
    ? v1
    : controllers(join(v2, 'cgroup.subtree_control')).includes('pids')
      ? v2
      : undefined;
  if (!root) return undefined;
  const dir = join(root, `alacarte-agent-test-${pid}`);
  mkdirSync(dir);
  cgroups.push(dir);
  writeFileSync(join(dir, 'pids.max'), String(max));
  writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  return dir;
}

describe.skipIf(skip !== undefined)(`the native exec agent's requests ${skip ?? ''}`, () => {
  it('runs a well-formed request', async () => {
    const r = await execWith(
      '00000000000a',
      nativeRequest(['PATH=/bin:/usr/bin'], '', ['echo', 'hi'], false),
    );
    expect(r).toEqual({ status: '0', stdout: 'hi\n', stderr: '' });
  });

  it('says on the exec’s stderr why a request cannot be run, and ends it 126', async () => {
    const malformed = await execWith('00000000000b', 'not a request');
    expect(malformed.status).toBe('126');
    expect(malformed.stderr).toBe("alacarte: the exec's request is malformed\n");
    // Fields missing after a valid head: the argument count promises more than is there.
    const short = await execWith(
      '00000000000c',
      Buffer.from('1\x000\x00\x00/bin\x003\x00echo\x00', 'latin1'),
    );
    expect(short.status).toBe('126');
    expect(short.stderr).toBe("alacarte: the exec's request is malformed\n");
    const missing = await execWith('00000000000d', '');
    expect(missing.status).toBe('126');
    expect(missing.stderr).toMatch(/^alacarte: the exec's request is (malformed|not one)\n$/);
  });

  it('says on the exec’s stderr that it could not start the command at the process limit, and ends it 126', async (ctx) => {
    const limited = startAgent();
    // The agent alone and not one process more, as in a sandbox whose tenant holds every process
    // its offer allows: the fork for the exec is refused (EAGAIN). Before, 126 and nothing said.
    if (!limited.process.pid || !pidsCgroup(limited.process.pid, 1)) return ctx.skip();
    const id = '00000000000e';
    const base = join(limited.dir, 'x', id);
    execFileSync('mkfifo', [`${base}.out`, `${base}.err`]);
    writeFileSync(base, nativeRequest(['PATH=/bin:/usr/bin'], '', ['true'], false));
    // Held read-write and non-blocking, as the node holds it while the exec runs: what the agent
    // wrote is there to read once it has answered, and nothing here waits for a writer.
    const err = openSync(`${base}.err`, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      expect(await send(limited, id)).toBe('126');
      const said = Buffer.alloc(4096);
      const n = readSync(err, said);
      expect(said.subarray(0, n).toString()).toBe(
        'alacarte: cannot start the command: Resource temporarily unavailable ' +
          '(the sandbox runs as many processes as its offer allows)\n',
      );
    } finally {
      closeSync(err);
    }
  });
});
