import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { OutputDrain } from '../../../../src/drivers/crun/output-drain.js';
import { CommandOutput } from '../../../../src/drivers/crun/spawn-output.js';

/**
 * CommandOutput on a real child's pipe (what `crun exec` gives the node): the command is `sh -c`,
 * its background job a loop that keeps the pipe, as a server started with `&` does.
 */
const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  // The jobs hold the pipe: their process group goes with the test.
  for (const c of children.splice(0)) {
    try {
      if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

function command(script: string, drain?: OutputDrain) {
  const child = spawn('sh', ['-c', script], { detached: true });
  children.push(child);
  child.stdin.end();
  child.stderr.resume();
  const output = new CommandOutput(child.stdout, drain);
  child.once('exit', () => output.commandExited());
  return { child, output };
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('CommandOutput', () => {
  it('passes on all the command wrote to a reader that comes late, then ends, while its job keeps writing', async () => {
    const drain = new OutputDrain();
    const { output } = command(
      'while :; do echo tick; sleep 0.05; done & head -c 3000000 /dev/zero | tr "\\0" x; echo; echo last',
      drain,
    );
    // Nobody reads while the command finishes: its last megabytes wait in the pipe.
    await sleep(1500);
    const chunks: Buffer[] = [];
    output.stream.on('data', (b: Buffer) => chunks.push(b));
    await output.done;
    const text = Buffer.concat(chunks).toString();
    // The job's ticks may come before and among the first bytes, never inside the command's run.
    const body = text.replace(/tick\n/g, '');
    expect(body.length).toBe(3_000_000 + 1 + 5);
    expect(sha(body)).toBe(sha(`${'x'.repeat(3_000_000)}\nlast\n`));
    // The job's pipe is kept read, not closed.
    expect(drain.size).toBe(1);
    drain.close();
  });

  it('ends soon after the exit while a job writes without pause, bounded', async () => {
    const { output } = command('yes spam & echo started');
    let n = 0;
    let text = '';
    output.stream.on('data', (b: Buffer) => {
      n += b.length;
      if (text.length < 100_000) text += b.toString();
    });
    await output.done;
    expect(text).toContain('started\n');
    // At most what the socket can hold past the exit (2 x wmem_max, at least 1 MiB), plus reads.
    expect(n).toBeLessThan(64 << 20);
  });

  it('ends at once when nothing holds the pipe, and waits for a reader that never reads', async () => {
    const { output } = command('echo one');
    let ended = false;
    void output.done.then(() => {
      ended = true;
    });
    await sleep(500);
    // Not read yet: its byte waits, the stream has not ended.
    expect(ended).toBe(false);
    const got: Buffer[] = [];
    output.stream.on('data', (b: Buffer) => got.push(b));
    await output.done;
    expect(Buffer.concat(got).toString()).toBe('one\n');
  });

  it('ends, empty, a stream nobody reads when the command wrote nothing', async () => {
    const { output } = command('true');
    await output.done;
    expect(output.stream.readableEnded).toBe(true);
  });

  it('release() ends the stream and hands a pipe still held to the drain', async () => {
    const drain = new OutputDrain();
    const { output } = command('while :; do echo tick; sleep 0.05; done', drain);
    output.stream.resume();
    await sleep(200);
    output.release();
    await output.done;
    expect(drain.size).toBe(1);
    drain.close();
  });
});
