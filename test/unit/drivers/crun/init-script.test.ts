import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  commandFile,
  deadlineFile,
  initScript,
  leaseFile,
} from '../../../../src/drivers/crun/init-script.js';
import { IN_SANDBOX } from '../../../../src/drivers/crun/oci-spec.js';

const busybox = '/bin/busybox';
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs the init script on the host with its sandbox paths pointed at a temporary directory. */
function runInit(deadlineEpoch: number, setup?: (dir: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-init-'));
  dirs.push(dir);
  setup?.(dir);
  writeFileSync(join(dir, 'deadline'), `${deadlineEpoch}\n`);
  spawnSync(busybox, ['mkfifo', join(dir, 'wake')]);
  // init starts the lease's command with the sandbox's busybox, at <run dir>/bin.
  mkdirSync(join(dir, 'bin'));
  symlinkSync(busybox, join(dir, 'bin', 'busybox'));
  const script = initScript().replaceAll(IN_SANDBOX.runDir, dir);
  const child = spawn(busybox, ['sh', '-c', script, 'init'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { dir, child, exited };
}

describe('the sandbox init', () => {
  it.skipIf(!existsSync(busybox))('exits at once when the deadline has passed', async () => {
    const { exited } = runInit(Math.floor(Date.now() / 1000) - 1);
    expect(await exited).toBe(0);
  });

  it.skipIf(!existsSync(busybox))(
    'keeps running before the deadline and re-reads it on SIGUSR1',
    async () => {
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
    },
  );

  it.skipIf(!existsSync(busybox))(
    'wakes on a line in its FIFO, even one written while it was busy',
    async () => {
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
    },
  );

  it.skipIf(!existsSync(busybox))('ends when the deadline file is gone (fails closed)', async () => {
    const { dir, child, exited } = runInit(Math.floor(Date.now() / 1000) + 3600);
    await new Promise((r) => setTimeout(r, 200));
    rmSync(join(dir, 'deadline'));
    child.kill('SIGUSR1');
    expect(await exited).toBe(0);
  });

  it.skipIf(!existsSync(busybox))(
    'starts the lease command with its environment, quoting kept intact',
    async () => {
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
      const out = join(dir, 'out');
      for (let i = 0; i < 50 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 20));
      expect(readFileSync(out, 'utf8')).toBe(`hi there|it's "quoted" $HOME \`x\` ; rm -rf /`);
      child.kill('SIGKILL');
      await exited;
    },
  );

  it.skipIf(!existsSync(busybox))(
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
      expect(fds).not.toContain(join(dir, 'wake'));
      // init ends at the deadline on its own (its 30 s wait is cut at the deadline).
      const tooLate = new Promise((r) => setTimeout(() => r('still running'), 8000));
      expect(await Promise.race([exited, tooLate])).toBe(0);
      expect(Date.now() / 1000).toBeGreaterThanOrEqual(deadline);
      child.kill('SIGKILL');
    },
  );

  it('writes nothing to run for an empty command, and a command starting with - as a program', () => {
    expect(commandFile([], { A: 'b' })).toBe('');
    expect(commandFile(['-x', "it's"], { A: 'b c' })).toBe("export A='b c'\nexec -- '-x' 'it'\\''s'\n");
  });

  it('writes whole seconds rounded up and the lease file of the API', () => {
    expect(deadlineFile(new Date(1_700_000_000_001))).toBe('1700000001\n');
    expect(deadlineFile(new Date(1_700_000_000_000))).toBe('1700000000\n');
    expect(JSON.parse(leaseFile('lse_x', new Date(1_700_000_000_000)))).toEqual({
      id: 'lse_x',
      expires_at: '2023-11-14T22:13:20.000Z',
    });
  });
});
