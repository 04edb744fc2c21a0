import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NATIVE_INIT_BUILD } from '../../../../src/drivers/crun/host-setup.js';
import {
  commandFile,
  deadlineFile,
  INIT_UID,
  initScript,
  leaseFile,
  NATIVE_INIT_NAME,
  START_FIFO,
  WAKE_FIFO,
} from '../../../../src/drivers/crun/init-script.js';
import { IN_SANDBOX } from '../../../../src/drivers/crun/oci-spec.js';

const busybox = '/bin/busybox';
// init changes its uid (INIT_UID) as root inside does: on the host that takes root.
const canRun = existsSync(busybox) && process.getuid?.() === 0;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) {
    // On the host, init's end does not end its starter and agent (in a sandbox the pid namespace
    // goes with init): they are in sessions of their own and would wait for their files forever.
    for (const pid of processesMentioning(d)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    rmSync(d, { recursive: true, force: true });
  }
});

/** The pids of the processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * What a process in the test writes to `path`, once `done` says it is whole (up to 5 s): a shell's
 * `>` creates the file before the command writes to it, so the file's existence is not enough.
 */
async function contentOf(path: string, done: (text: string) => boolean): Promise<string> {
  const read = () => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  for (let i = 0; i < 250 && !done(read()); i++) await new Promise((r) => setTimeout(r, 20));
  return read();
}

/**
 * Runs init on the host with its sandbox paths pointed at a temporary directory: the busybox shell
 * init (init-script.ts) or the native one (native/sandbox-init.c, as scripts/setup.sh builds it).
 */
function startInit(kind: InitKind, deadlineEpoch: number, setup?: (dir: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-init-'));
  dirs.push(dir);
  // Its deadline loop runs as INIT_UID, which must reach the deadline file, as in a sandbox.
  chmodSync(dir, 0o755);
  setup?.(dir);
  writeFileSync(join(dir, 'deadline'), `${deadlineEpoch}\n`, { mode: 0o644 });
  spawnSync(busybox, ['mkfifo', join(dir, WAKE_FIFO), join(dir, START_FIFO)]);
  // init starts the lease's command with the sandbox's busybox, at <run dir>/bin, and runs its
  // deadline loop from a copy INIT_UID may execute but not read.
  mkdirSync(join(dir, 'bin'));
  symlinkSync(busybox, join(dir, 'bin', 'busybox'));
  copyFileSync(busybox, join(dir, 'bin', 'busybox-init'));
  chmodSync(join(dir, 'bin', 'busybox-init'), 0o711);
  const child =
    kind === 'native'
      ? spawn(NATIVE_INIT_BUILD, [dir, String(INIT_UID), join(dir, 'bin', 'busybox')], { stdio: 'ignore' })
      : spawn(busybox, ['sh', '-c', initScript().replaceAll(IN_SANDBOX.runDir, dir), 'init'], {
          stdio: 'ignore',
        });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { dir, child, exited };
}

type InitKind = 'shell' | 'native';
const INITS: { kind: InitKind; skip: boolean }[] = [
  { kind: 'shell', skip: !canRun },
  // Built by scripts/setup.sh wherever the node runs sandboxes (CI included).
  { kind: 'native', skip: !canRun || !existsSync(NATIVE_INIT_BUILD) },
];

describe.each(INITS)('the sandbox init ($kind)', ({ kind, skip }) => {
  const runInit = (deadlineEpoch: number, setup?: (dir: string) => void) =>
    startInit(kind, deadlineEpoch, setup);

  it.skipIf(skip)('exits at once when the deadline has passed', async () => {
    const { exited } = runInit(Math.floor(Date.now() / 1000) - 1);
    expect(await exited).toBe(0);
  });

  it.skipIf(skip)('keeps running before the deadline and re-reads it on SIGUSR1', async () => {
    const { dir, child, exited } = runInit(Math.floor(Date.now() / 1000) + 3600);
    let ended = false;
    void exited.then(() => {
      ended = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(ended).toBe(false);
    writeFileSync(join(dir, 'deadline'), `${Math.floor(Date.now() / 1000) - 1}\n`);
    child.kill('SIGUSR1');
    expect(await exited).toBe(0);
  });

  it.skipIf(skip)('wakes on a line in its FIFO, even one written while it was busy', async () => {
    const { dir, exited } = runInit(Math.floor(Date.now() / 1000) + 3600);
    await new Promise((r) => setTimeout(r, 200));
    writeFileSync(join(dir, 'deadline'), `${Math.floor(Date.now() / 1000) - 1}\n`);
    // O_RDWR on our side too, so the open never blocks; the line waits in the pipe for init.
    const fd = openSync(join(dir, 'wake'), constants.O_RDWR | constants.O_NONBLOCK);
    writeSync(fd, '\n');
    closeSync(fd);
    // Without the wake-up init would sleep its full 30 s.
    const tooLate = new Promise((r) => setTimeout(() => r('still waiting'), 10_000));
    expect(await Promise.race([exited, tooLate])).toBe(0);
  });

  it.skipIf(skip)(
    'ends at its deadline while its wake FIFO is flooded (root inside may write it)',
    async () => {
      const deadline = Math.floor(Date.now() / 1000) + 2;
      const { dir, exited } = runInit(deadline);
      // As fast as writers can: a pipe grown to 1 MiB (F_SETPIPE_SZ needs no privilege), two writers
      // of 64 KiB a write, faster than init reads it.
      const fifo = join(dir, WAKE_FIFO);
      const writer = `open(my $f, '+<', '${fifo}') or die; fcntl($f, 1031, 1 << 20); syswrite($f, "x" x 65536) while 1`;
      const floods = [0, 1].map(() => spawn('perl', ['-e', writer], { stdio: 'ignore' }));
      try {
        const tooLate = new Promise((r) => setTimeout(() => r('still running'), 8000));
        expect(await Promise.race([exited, tooLate])).toBe(0);
        expect(Date.now() / 1000).toBeGreaterThanOrEqual(deadline);
      } finally {
        for (const f of floods) f.kill('SIGKILL');
      }
    },
  );

  it.skipIf(skip)('ends when the deadline file is gone (fails closed)', async () => {
    const { dir, child, exited } = runInit(Math.floor(Date.now() / 1000) + 3600);
    await new Promise((r) => setTimeout(r, 200));
    rmSync(join(dir, 'deadline'));
    child.kill('SIGUSR1');
    expect(await exited).toBe(0);
  });

  it.skipIf(skip)('starts the lease command with its environment, quoting kept intact', async () => {
    const { dir, child, exited } = runInit(Math.floor(Date.now() / 1000) + 3600, (d) => {
      const tricky = `it's "quoted" $HOME \`x\` ; rm -rf /`;
      writeFileSync(
        join(d, 'command.sh'),
        commandFile(['sh', '-c', 'printf "%s|%s" "$GREETING" "$1" > "$OUT"', 'sh', tricky], {
          GREETING: 'hi there',
          OUT: join(d, 'out'),
        }),
      );
    });
    const expected = `hi there|it's "quoted" $HOME \`x\` ; rm -rf /`;
    expect(await contentOf(join(dir, 'out'), (text) => text.length >= expected.length)).toBe(expected);
    child.kill('SIGKILL');
    await exited;
  });

  it.skipIf(skip)(
    "keeps its deadline whatever the lease's environment names, which reaches only the command",
    async () => {
      // Each of these is a variable of init's own script or one that changes how a shell works:
      // sourced into init, D=/dev/zero alone made it read forever and never end the sandbox.
      const hostile: Record<string, string> = {
        D: '/dev/zero',
        R: '/nonexistent',
        d: '99999999999',
        r: '3600',
        x: 'x',
        started: '',
        PATH: '/dev/zero',
        IFS: '0123456789',
        ENV: '/dev/zero',
        EPOCHSECONDS: '1',
        HOME: '/dev/zero',
      };
      const deadline = Math.floor(Date.now() / 1000) + 2;
      const { dir, child, exited } = runInit(deadline, (d) => {
        writeFileSync(
          join(d, 'command.sh'),
          commandFile(
            [
              '/bin/busybox',
              'sh',
              '-c',
              'tr "\\0" "\\n" < /proc/$$/environ > "$1.tmp"; echo $$ > "$1.pid"; mv "$1.tmp" "$1"; exec /bin/busybox sleep 60',
              'sh',
              join(d, 'env'),
            ],
            hostile,
          ),
        );
      });
      const out = join(dir, 'env');
      for (let i = 0; i < 100 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 20));
      const seen = readFileSync(out, 'utf8').split('\n');
      for (const [k, v] of Object.entries(hostile)) expect(seen).toContain(`${k}=${v}`);
      // The command does not hold init's wake FIFO (init's fd 3).
      const pid = readFileSync(join(dir, 'env.pid'), 'utf8').trim();
      const fds = readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));
      expect(fds.length).toBeGreaterThanOrEqual(3);
      expect(fds).not.toContain(join(dir, WAKE_FIFO));
      expect(fds).not.toContain(join(dir, START_FIFO));
      // init ends at the deadline on its own (its 30 s wait is cut at the deadline).
      const tooLate = new Promise((r) => setTimeout(() => r('still running'), 8000));
      expect(await Promise.race([exited, tooLate])).toBe(0);
      expect(Date.now() / 1000).toBeGreaterThanOrEqual(deadline);
      child.kill('SIGKILL');
    },
  );

  it.skipIf(skip)(
    'keeps its deadline as INIT_UID, non-dumpable, and starts a command that comes later as root',
    async () => {
      const { dir, child, exited } = runInit(Math.floor(Date.now() / 1000) + 3600);
      const pid = child.pid ?? 0;
      const status = () => readFileSync(`/proc/${pid}/status`, 'utf8');
      for (let i = 0; i < 250 && !/^Uid:\s+65533\s/m.test(status()); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(status()).toMatch(new RegExp(`^Uid:\\s+${INIT_UID}\\s+${INIT_UID}\\s+${INIT_UID}\\s`, 'm'));
      expect(status()).toMatch(/^CapEff:\s+0+$/m);
      // The native init names itself once there, which is what the host waits for (init-process.ts).
      if (kind === 'native') expect(readFileSync(`/proc/${pid}/comm`, 'utf8')).toBe(`${NATIVE_INIT_NAME}\n`);
      // Non-dumpable: its /proc files are root's, not its own uid's, and its uid may not open them.
      expect(statSync(`/proc/${pid}/environ`).uid).toBe(0);
      const probe = spawnSync(busybox, [
        'nsenter',
        '-S',
        String(INIT_UID),
        '-G',
        String(INIT_UID),
        '-F',
        busybox,
        'cat',
        `/proc/${pid}/environ`,
      ]);
      expect(probe.status).not.toBe(0);
      // The lease's command comes once init runs; a line in the start FIFO has it started at once.
      const out = join(dir, 'out');
      const script = `{ id -u; grep SigIgn /proc/self/status; } > ${out}.tmp; mv ${out}.tmp ${out}`;
      writeFileSync(join(dir, 'command.sh'), commandFile(['sh', '-c', script], {}));
      const fd = openSync(join(dir, START_FIFO), constants.O_RDWR | constants.O_NONBLOCK);
      writeSync(fd, '\n');
      closeSync(fd);
      // The native init starts it with every signal at its default; the shell init's starter, a
      // background job of a shell without job control, with SIGINT and SIGQUIT ignored.
      const ignored = kind === 'native' ? '0000000000000000' : '0000000000000006';
      expect(await contentOf(out, (text) => text.endsWith('\n'))).toBe(`0\nSigIgn:\t${ignored}\n`);
      child.kill('SIGKILL');
      await exited;
    },
  );
});

describe('the files init reads', () => {
  it('writes nothing to run for an empty command', () => {
    expect(commandFile([], { A: 'b' })).toBe('');
  });

  /** Runs commandFile's script as init's starter does (busybox sh, no environment of its own). */
  const runCommandFile = (...args: Parameters<typeof commandFile>) => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-command-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'command.sh'), commandFile(...args));
    const r = spawnSync(busybox, ['sh', join(dir, 'command.sh')], { env: {}, encoding: 'utf8', cwd: '/' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it.skipIf(!existsSync(busybox))(
    'runs the command with exactly its environment, in its working directory, quoted',
    () => {
      // `env` is also a busybox applet: the image's program runs, without the shell's SHLVL and PWD,
      // and variables the script uses itself (IFS, PATH) are the environment's.
      const env = { PATH: '/usr/bin:/bin', A: "it's", IFS: 'x', _alacarte_f: 'mine' };
      const r = runCommandFile(['env'], env);
      expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(
        Object.entries(env)
          .map(([k, v]) => `${k}=${v}`)
          .sort(),
      );
      const dir = mkdtempSync(join(tmpdir(), "alacarte-my dir'q-"));
      dirs.push(dir);
      expect(runCommandFile(['pwd'], { PATH: '/usr/bin:/bin' }, dir).stdout).toBe(`${dir}\n`);
      expect(runCommandFile(['pwd'], {}, join(dir, 'gone')).status).toBe(1);
    },
  );

  it.skipIf(!existsSync(busybox))(
    'runs the program found in PATH with argv[0] as given, not a busybox applet or builtin of that name',
    () => {
      const bin = mkdtempSync(join(tmpdir(), 'alacarte-path-'));
      dirs.push(bin);
      // A program earlier in PATH than busybox's `sleep`, and one whose name starts with `-`.
      for (const name of ['sleep', '-x']) {
        writeFileSync(join(bin, name), `#!${busybox} sh\necho "${name} from PATH: $*"\n`, { mode: 0o755 });
      }
      const path = `${bin}:/usr/bin:/bin`;
      expect(runCommandFile(['sleep', "it's"], { PATH: path }).stdout).toBe("sleep from PATH: it's\n");
      expect(runCommandFile(['-x'], { PATH: path }).stdout).toBe('-x from PATH: \n');
      const cmdline = runCommandFile(['cat', '/proc/self/cmdline'], { PATH: '/usr/bin:/bin' });
      expect(cmdline.stdout).toBe('cat\0/proc/self/cmdline\0');
      // Builtins and missing programs are not found (127); what is not an executable file, 126.
      for (const command of [['exit', '3'], ['cd', '/'], ['no-such-program']]) {
        const r = runCommandFile(command, { PATH: path });
        expect([r.status, r.stderr]).toEqual([127, `${command[0]}: not found\n`]);
      }
      for (const file of ['/etc/passwd', '/etc']) {
        expect(runCommandFile([file], {}).status).toBe(126);
      }
    },
  );

  it('writes whole seconds rounded up and the lease file of the API', () => {
    expect(deadlineFile(new Date(1_700_000_000_001))).toBe('1700000001\n');
    expect(deadlineFile(new Date(1_700_000_000_000))).toBe('1700000000\n');
    expect(JSON.parse(leaseFile('lse_x', new Date(1_700_000_000_000)))).toEqual({
      id: 'lse_x',
      expires_at: '2023-11-14T22:13:20.000Z',
    });
  });
});
