import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
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

  it('writes whole seconds rounded up and the lease file of the API', () => {
    expect(deadlineFile(new Date(1_700_000_000_001))).toBe('1700000001\n');
    expect(deadlineFile(new Date(1_700_000_000_000))).toBe('1700000000\n');
    expect(JSON.parse(leaseFile('lse_x', new Date(1_700_000_000_000)))).toEqual({
      id: 'lse_x',
      expires_at: '2023-11-14T22:13:20.000Z',
    });
  });
});
