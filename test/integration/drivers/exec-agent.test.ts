import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecRequest, SandboxHandle } from '../../../src/drivers/compute-driver.js';
import type { CrunDriverOptions } from '../../../src/drivers/crun/crun-options.js';
import { newLeaseId, TEST_LIMITS } from './compute-driver.contract.js';
import { type CrunTarget, crunSkipReason, makeCrunTarget } from './crun-target.js';
import { ISOLATION_IMAGES } from './isolation-images.js';

/** What a command sees of its identity and confinement, one `name value` per line. */
const IDENTITY = [
  'sh',
  '-c',
  [
    'grep -E "^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters|SigIgn|SigBlk):" /proc/self/status',
    'echo "cgroup $(cat /proc/self/cgroup | tr "\\n" " ")"',
    'for n in cgroup ipc mnt net pid user uts; do echo "ns $n $(readlink /proc/self/ns/$n)"; done',
    'echo "nofile $(ulimit -n) $(ulimit -Hn)"',
    'echo "oom $(cat /proc/self/oom_score_adj)"',
    'echo "umask $(umask)"',
    'echo "cwd $(pwd)"',
    'echo "shell $(readlink /proc/$$/exe)"',
    'echo "session $(($(cut -d" " -f6 /proc/self/stat) == $$))"',
    'env | grep -v "^_=" | sort',
  ].join('\n'),
];

const run = (t: CrunTarget, h: SandboxHandle, command: string[], extra: Partial<ExecRequest> = {}) =>
  t.driver.exec(h, { command, timeoutMs: 30_000, maxOutputBytes: 1 << 20, ...extra });

/**
 * The agents (exec-agent.ts): the native one (native/exec-agent.c, what sandboxes run when the
 * host has it built), forked by the native init (native/sandbox-init.c) or started by the shell
 * init from its own program, and the busybox shell one (the fallback); `program` is what its
 * processes' command line names (and `comm` their name, where init's command line is the same),
 * `fifo` the request FIFO it reads, `sigIgn` the signals its commands start with ignored.
 */
const AGENTS: {
  name: string;
  options: Partial<CrunDriverOptions>;
  program: string;
  comm?: string;
  fifo: string;
  sigIgn: string;
  images: typeof ISOLATION_IMAGES;
}[] = [
  {
    name: 'native, in the native init',
    options: {},
    program: '/run/alacarte/bin/sandbox-init',
    comm: 'alacarte-agent',
    fifo: 'exec-in',
    sigIgn: '0000000000000000',
    images: ISOLATION_IMAGES.filter((i) => i.name !== 'pulled'),
  },
  {
    name: 'native, started by the shell init',
    options: { nativeInit: false },
    program: '/run/alacarte/bin/exec-agent',
    fifo: 'exec-in',
    sigIgn: '0000000000000000',
    images: ISOLATION_IMAGES.filter((i) => i.name === 'busybox'),
  },
  {
    name: 'busybox shell',
    options: { nativeAgent: false as const },
    program: '/run/alacarte/bin/agent.sh',
    fifo: 'agent-in',
    // A shell without job control starts its background jobs with SIGINT and SIGQUIT ignored, and
    // busybox offers no way to reset that before the command runs.
    sigIgn: '0000000000000006',
    images: ISOLATION_IMAGES.filter((i) => i.name === 'busybox'),
  },
];
type Agent = (typeof AGENTS)[number];

/** The host pids of a sandbox's exec agent (its loop and any watcher forked from it). */
function agentPids(t: CrunTarget, h: SandboxHandle, agent: Agent): number[] {
  // The lease's link names the sandbox's container, the last part of its cgroup path.
  const container = readlinkSync(join(t.options.runtimeDir, h.leaseId));
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(join('/proc', entry, 'cmdline'), 'latin1');
      const cgroup = readFileSync(join('/proc', entry, 'cgroup'), 'latin1');
      const named =
        agent.comm === undefined ||
        readFileSync(join('/proc', entry, 'comm'), 'latin1') === `${agent.comm}\n`;
      if (cmdline.includes(agent.program) && named && cgroup.includes(`/${container}\n`))
        pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/**
 * Waits (bounded) until a process of the sandbox holds its run directory's `name` FIFO open: a
 * replacement started in the background opens it a moment later, and an exec sent before that
 * would find no reader and go through the runtime instead (as it does once an agent is gone).
 */
async function untilFifoHeld(t: CrunTarget, h: SandboxHandle, name: string): Promise<void> {
  const container = readlinkSync(join(t.options.runtimeDir, h.leaseId));
  const held = () =>
    readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .some((pid) => {
        try {
          if (!readFileSync(join('/proc', pid, 'cgroup'), 'latin1').includes(`/${container}\n`)) return false;
          return readdirSync(join('/proc', pid, 'fd')).some((fd) =>
            readlinkSync(join('/proc', pid, 'fd', fd)).endsWith(`/${name}`),
          );
        } catch {
          return false; // gone meanwhile
        }
      });
  for (let i = 0; i < 500; i++) {
    if (held()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`nothing in the sandbox opened ${name}`);
}

/** Kills the agents of the target's sandboxes and waits (bounded) until they are gone. */
async function killAgent(t: CrunTarget, h: SandboxHandle, agent: Agent): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const pids = agentPids(t, h, agent).filter((pid) => !zombie(pid));
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (e) {
        // Exited (and reaped) between the listing and the kill: what this waits for anyway.
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the agent did not die');
}

function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

// The exec agent (exec-agent.ts): non-interactive execs run by a shell inside the sandbox instead of
// `crun exec`. What a command sees must be what `crun exec` gave it; `crun exec` is what the driver
// falls back to once the agent is gone, so the two are compared in one sandbox.
describe.skipIf(crunSkipReason).each(AGENTS)('the $name exec agent in crun sandboxes', (agent) => {
  // The pulled image adds nothing here (its shell and tools are busybox's too).
  for (const image of agent.images) {
    describe(`${image.name} image`, () => {
      let t: CrunTarget;
      let cleanup = () => {};
      beforeAll(async () => {
        const prepared = await image.prepare();
        cleanup = prepared.cleanup;
        t = await makeCrunTarget({
          ...agent.options,
          ...(prepared.imagesDir ? { imagesDir: prepared.imagesDir } : {}),
        });
      }, 180_000);
      afterAll(async () => {
        await t?.dispose();
        cleanup();
      });

      it('runs the command as `crun exec` would: ids, capabilities, seccomp, cgroup, namespaces, limits, env, cwd', async () => {
        const h = await t.driver.start(
          { leaseId: newLeaseId(), image: image.name, env: { LEASE_VAR: 'from the lease' } },
          TEST_LIMITS,
          new Date(Date.now() + 120_000),
        );
        const viaAgent = await run(t, h, IDENTITY, { env: { REQUEST_VAR: "it's \n two lines" } });
        const parent = await run(t, h, ['sh', '-c', 'cat /proc/$PPID/cmdline | tr "\\0" " "']);
        expect(parent.stdout.toString()).toContain(agent.program);
        await killAgent(t, h, agent);
        const viaRuntime = await run(t, h, IDENTITY, { env: { REQUEST_VAR: "it's \n two lines" } });
        const parentNow = await run(t, h, ['sh', '-c', 'echo $PPID']);
        // `crun exec` starts the command from outside the sandbox's pid namespace.
        expect(parentNow.stdout.toString()).toBe('0\n');
        expect(viaAgent.exitCode).toBe(0);
        expect(viaAgent.stderr.toString()).toBe('');
        expect(viaAgent.stdout.toString()).toContain('LEASE_VAR=from the lease');
        expect(viaAgent.stdout.toString()).toContain("REQUEST_VAR=it's ");
        // Where they differ, the agent gives what the sandbox's OCI config says (init has it): `crun
        // exec` leaves out the RLIMIT_NOFILE and the OOM score of process in config.json (its command
        // got the node's), and starts the command in the session of its own process. no_new_privs
        // both have (the driver asks the runtime's exec for it).
        const lines = viaAgent.stdout.toString().split('\n');
        for (const line of ['NoNewPrivs:\t1', 'nofile 1024 4096', 'oom 500', 'session 1'])
          expect(lines).toContain(line);
        expect(viaRuntime.stdout.toString().split('\n')).toContain('NoNewPrivs:\t1');
        expect(lines).toContain(`SigIgn:\t${agent.sigIgn}`);
        const same = (text: string) =>
          text.split('\n').filter((l) => !/^(NoNewPrivs:|SigIgn:|nofile |oom |session )/.test(l));
        expect(same(viaAgent.stdout.toString())).toEqual(same(viaRuntime.stdout.toString()));
        await t.driver.stop(h);
      });

      it('exit codes, stdin, binary output, caps, a missing command, a command that kills its own agent', async () => {
        const h = await t.driver.start(
          { leaseId: newLeaseId(), image: image.name },
          TEST_LIMITS,
          new Date(Date.now() + 120_000),
        );
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const cat = await run(t, h, ['cat'], { stdin: bytes });
        expect(cat.stdout.equals(bytes)).toBe(true);
        expect((await run(t, h, ['sh', '-c', 'exit 7'])).exitCode).toBe(7);
        expect((await run(t, h, ['sh', '-c', 'kill -9 $$'])).exitCode).toBe(137);
        const missing = await run(t, h, ['no-such-command']);
        expect(missing.exitCode).toBe(127);
        // An empty PATH has no directory to look in (not even the working one), as the shell splits it.
        expect((await run(t, h, ['true'], { env: { PATH: '' } })).exitCode).toBe(127);
        expect((await run(t, h, ['true'], { env: { PATH: '/nowhere:/bin' } })).exitCode).toBe(0);
        // Names the lookup itself uses, given as environment, change nothing about what runs.
        const named = { PATH: '/bin', c: '/bin/false', f: '/bin/false', _alacarte_f: '/bin/false' };
        expect((await run(t, h, ['true'], { env: named })).exitCode).toBe(0);
        expect((await run(t, h, ['/etc/passwd'])).exitCode).toBe(126);
        const big = await run(t, h, ['sh', '-c', 'head -c 100000 /dev/zero'], { maxOutputBytes: 1000 });
        expect(big.stdout.length).toBe(1000);
        expect(big.truncated).toBe(true);
        expect(agentPids(t, h, agent).length).toBeGreaterThan(0);
        // Everything but init dies, the agent and this exec's own watcher too: the exec still returns.
        const all = await run(t, h, ['sh', '-c', 'kill -9 -1; sleep 5'], { timeoutMs: 60_000 });
        expect(all.exitCode).toBe(137);
        expect(all.timedOut).toBe(false);
        // Later execs go through `crun exec`.
        const after = await run(t, h, ['echo', 'still here']);
        expect(after.stdout.toString()).toBe('still here\n');
        // There too, a caller that goes away ends its command at once.
        const gone = new AbortController();
        setTimeout(() => gone.abort(), 500);
        const abandoned = await run(t, h, ['sh', '-c', 'sleep 304 & sleep 305'], {
          timeoutMs: 600_000,
          signal: gone.signal,
        });
        expect(abandoned.timedOut).toBe(true);
        const ps = await run(t, h, ['sh', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
        expect(ps.stdout.toString()).not.toMatch(/sleep 30[45]/);
        await t.driver.stop(h);
      });

      it('a timeout kills every process of the exec, double-forked ones too, and nothing else', async () => {
        const h = await t.driver.start(
          { leaseId: newLeaseId(), image: image.name },
          TEST_LIMITS,
          new Date(Date.now() + 120_000),
        );
        const other = await run(t, h, ['sh', '-c', 'sleep 300 & echo started'], { timeoutMs: 30_000 });
        expect(other.stdout.toString()).toBe('started\n');
        const r = await run(t, h, ['sh', '-c', '(sleep 301 &); sleep 302 & sleep 303'], { timeoutMs: 1500 });
        expect(r.timedOut).toBe(true);
        const ps = await run(t, h, ['sh', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
        expect(ps.stdout.toString()).toContain('sleep 300');
        expect(ps.stdout.toString()).not.toMatch(/sleep 30[123]/);
        await t.driver.stop(h);
      });
    });
  }

  describe('a hostile agent (replaced by the tenant)', () => {
    let t: CrunTarget;
    beforeAll(async () => {
      t = await makeCrunTarget(agent.options);
    });
    afterAll(async () => {
      await t?.dispose();
    });

    /** Replaces the agent with `script` (it gets the request FIFO on fd 3, the answer FIFO on fd 4). */
    async function replaceAgent(h: SandboxHandle, script: string): Promise<void> {
      await killAgent(t, h, agent);
      const started = await t.driver.exec(h, {
        command: ['sh', '-c', `exec 3<>/run/alacarte/${agent.fifo} 4<>/run/alacarte/agent-out; ${script}`],
        background: true,
        timeoutMs: 30_000,
        maxOutputBytes: 1024,
      });
      expect(started.pid).toBeGreaterThan(0);
      await untilFifoHeld(t, h, agent.fifo);
    }

    it('one that never answers: the exec ends at its timeout, and the tenant cannot link in the run directory', async () => {
      const h = await t.driver.start(
        { leaseId: newLeaseId(), image: 'busybox' },
        TEST_LIMITS,
        new Date(Date.now() + 120_000),
      );
      const link = await run(t, h, ['ln', '-s', '/etc/shadow', '/run/alacarte/x/evil']);
      expect(link.exitCode).not.toBe(0);
      await replaceAgent(h, 'while read -r id <&3; do :; done');
      const r = await run(t, h, ['echo', 'hi'], { timeoutMs: 1000 });
      expect(r.timedOut).toBe(true);
      await t.driver.stop(h);
    });

    it('one that floods its answers and outputs: every exec returns by its timeout, capped', async () => {
      const h = await t.driver.start(
        { leaseId: newLeaseId(), image: 'busybox' },
        TEST_LIMITS,
        new Date(Date.now() + 120_000),
      );
      await replaceAgent(
        h,
        [
          'while read -r id <&3; do',
          '  X=/run/alacarte/x/$id',
          '  (yes garbage-line-that-is-no-answer >&4 &)',
          '  (head -c 10000000 /dev/zero > $X.out &)',
          '  echo "$id p 1" >&4; echo "$id 0" >&4',
          'done',
        ].join('\n'),
      );
      // Whatever it answers (it may claim any status for its own execs), every call returns by its
      // timeout with at most the cap kept, and the node goes on answering.
      for (let i = 0; i < 3; i++) {
        const r = await run(t, h, ['echo', 'hi'], { timeoutMs: 2000, maxOutputBytes: 4096 });
        expect(r.stdout.length).toBeLessThanOrEqual(4096);
        expect(r.stderr.length).toBeLessThanOrEqual(4096);
      }
      expect(await t.driver.isRunning(h)).toBe(true);
      await t.driver.stop(h);
    });
  });
});
