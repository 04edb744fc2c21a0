import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Spawner } from '../../../../src/drivers/crun/spawner.js';

const BUSYBOX = '/bin/busybox';

/** The spawner's busybox shell: the child of this process running `busybox sh -s`. */
function shellPids(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim();
    for (const pid of children ? children.split(' ').map(Number) : []) {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        if (cmdline[0] === BUSYBOX && cmdline[1] === 'sh' && cmdline[2] === '-s') pids.push(pid);
      } catch {
        // Ended meanwhile.
      }
    }
  }
  return pids;
}

/** Children of `pid` that have ended and not been reaped. */
function zombiesOf(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  let zombies = 0;
  for (const child of children ? children.split(' ') : []) {
    try {
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${child}/status`, 'utf8'))) zombies++;
    } catch {
      // Reaped meanwhile.
    }
  }
  return zombies;
}

let spawner: Spawner | undefined;
afterEach(() => {
  spawner?.close();
  spawner = undefined;
});

describe('the spawner shell', () => {
  it('answers each program its exit status and output', async () => {
    spawner = new Spawner(BUSYBOX);
    const r = await spawner.run(BUSYBOX, ['sh', '-c', 'echo out; echo err >&2; exit 3'], 1024);
    expect(r).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('leaves no zombie behind: 300 programs run, the shell holds fewer than a handful', async () => {
    const before = new Set(shellPids());
    spawner = new Spawner(BUSYBOX);
    await spawner.run('/bin/true', [], 16);
    const [shell] = shellPids().filter((pid) => !before.has(pid));
    expect(shell).toBeDefined();
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(Array.from({ length: 100 }, () => spawner?.run('/bin/true', [], 16)));
      expect(results.every((r) => r?.code === 0)).toBe(true);
    }
    // One more call: the shell reaps what has ended when it reads the next line.
    await spawner.run('/bin/true', [], 16);
    expect(zombiesOf(shell as number)).toBeLessThan(8);
  });

  it('kills a program that takes longer than its time limit and answers 137', async () => {
    spawner = new Spawner(BUSYBOX, 1);
    const r = await spawner.run('/bin/sleep', ['300'], 16);
    expect(r.code).toBe(137);
    // The shell still serves the next call.
    expect((await spawner.run('/bin/true', [], 16)).code).toBe(0);
  }, 30_000);

  it('fails the calls under way and those waiting when its shell dies, and the next call starts a new shell', async () => {
    const before = new Set(shellPids());
    spawner = new Spawner(BUSYBOX);
    await spawner.run('/bin/true', [], 16);
    const [shell] = shellPids().filter((pid) => !before.has(pid));
    expect(shell).toBeDefined();
    // 64 run at once; the other 6 wait their turn.
    const calls = Array.from({ length: 70 }, () => spawner!.run('/bin/sleep', ['30'], 16));
    // Its own process group: the shell and the programs it runs.
    process.kill(-(shell as number), 'SIGKILL');
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(70);
    expect((await spawner.run('/bin/true', [], 16)).code).toBe(0);
    expect(shellPids().filter((pid) => !before.has(pid) && pid !== shell)).toHaveLength(1);
  }, 30_000);
});
