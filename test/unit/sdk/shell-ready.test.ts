import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ShellNotReadyError, untilShellReads } from '../../../src/sdk/shell-ready.js';

/**
 * A shell on a terminal, as the SDK's terminal stream shows it: a prompt, then every line it reads
 * echoed after it, an `echo`'s words (quotes removed) and the next prompt. While `deaf` it drops
 * what it is sent, as a shell that has not set up its line editing may; while `slow` it holds what
 * it is sent and later runs it a line at a time. `bytewise` shows output one byte at a time, so an
 * answer arrives split.
 */
class FakeShell extends Duplex {
  deaf = false;
  slow = false;
  bytewise = false;
  /** How its lines end: runc's terminal shows \r\r\n. */
  eol = '\r\n';
  /** Every line the shell read and ran, in order. */
  readonly ran: string[] = [];
  private partial = '';

  constructor(banner = '') {
    super();
    this.show(`${banner}/ # `);
  }

  show(text: string): void {
    if (!this.bytewise) {
      this.push(Buffer.from(text));
      return;
    }
    for (const b of Buffer.from(text)) this.push(Buffer.from([b]));
  }

  /** Ends `slow`: what was held runs, a line every few milliseconds. */
  wake(): void {
    this.slow = false;
    this.runLines();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    if (!this.deaf) this.partial += chunk.toString();
    if (!this.slow) this.runLines();
    callback();
  }

  private runLines(): void {
    const nl = this.partial.indexOf('\n');
    if (nl < 0) return;
    const line = this.partial.slice(0, nl);
    this.partial = this.partial.slice(nl + 1);
    this.ran.push(line);
    const echo = /^ ?echo (.*)$/.exec(line);
    this.show(`${line}${this.eol}${echo ? `${echo[1]?.replaceAll('""', '')}${this.eol}` : ''}/ # `);
    setTimeout(() => this.runLines(), 5);
  }
}

/** What the consumer reads from the terminal after the wait, for `ms` milliseconds. */
async function readFor(terminal: Duplex, ms: number): Promise<string> {
  let out = '';
  terminal.on('data', (b: Buffer) => {
    out += b.toString();
  });
  terminal.resume();
  await new Promise((r) => setTimeout(r, ms));
  return out;
}

describe('untilShellReads', () => {
  it('types the probe again until a shell that dropped it answers, and shows nothing of it', async () => {
    const shell = new FakeShell('BusyBox built-in shell (ash)\r\n');
    shell.deaf = true;
    setTimeout(() => {
      shell.deaf = false;
    }, 150);
    const readiness = await untilShellReads(shell, { retypeMs: 50, timeoutMs: 5000 });
    expect(readiness).toEqual({ ready: true });
    expect(shell.ran.length).toBeGreaterThan(0);
    expect(shell.ran.every((l) => /^ echo alacarte-""ready-[0-9a-f]{12}-\d+$/.test(l))).toBe(true);
    // The consumer sees only what comes after: its own line and its output.
    shell.write('echo mine\n');
    const seen = await readFor(shell, 200);
    expect(seen).toBe('/ # echo mine\r\nmine\r\n/ # ');
  });

  it('waits for the answer of the last probe typed, so no probe output follows the wait', async () => {
    // A shell slow to start reads every probe typed meanwhile, one after the other.
    const shell = new FakeShell();
    shell.slow = true;
    setTimeout(() => shell.wake(), 150);
    await untilShellReads(shell, { retypeMs: 30, timeoutMs: 5000 });
    expect(shell.ran.length).toBeGreaterThan(1);
    shell.write('echo mine\n');
    const seen = await readFor(shell, 200);
    expect(seen).toBe('/ # echo mine\r\nmine\r\n/ # ');
  });

  it('finds an answer that arrives a byte at a time, and gives back what followed it', async () => {
    const shell = new FakeShell();
    shell.bytewise = true;
    const readiness = await untilShellReads(shell, { retypeMs: 5000, timeoutMs: 5000 });
    expect(readiness).toEqual({ ready: true });
    expect(await readFor(shell, 200)).toBe('/ # ');
  });

  it('takes an answer whose line ends in \\r\\r\\n, as on a runc terminal', async () => {
    const shell = new FakeShell();
    shell.eol = '\r\r\n';
    await untilShellReads(shell, { retypeMs: 5000, timeoutMs: 2000 });
    expect(await readFor(shell, 200)).toBe('/ # ');
  });

  it('gives up after its timeout with what the terminal showed, having sent nothing else', async () => {
    const shell = new FakeShell('not a shell> ');
    shell.deaf = true;
    const waited = untilShellReads(shell, { retypeMs: 20, timeoutMs: 300 });
    await expect(waited).rejects.toBeInstanceOf(ShellNotReadyError);
    await expect(waited).rejects.toThrow(
      /did not read its input within \d+ s \(none of yours was sent\).*not a shell> /,
    );
  });

  it('says so when the terminal ends before the shell answers', async () => {
    const shell = new FakeShell('sh: cannot start\r\n');
    shell.deaf = true;
    setTimeout(() => shell.push(null), 50);
    const readiness = untilShellReads(shell, { retypeMs: 20, timeoutMs: 5000 });
    expect(await readiness).toEqual({ ready: false, reason: 'ended', shown: 'sh: cannot start\r\n/ # ' });
  });
});
