import type { Alacarte } from '../../sdk/client.js';
import { type ShellReadyOptions, untilShellReads } from '../../sdk/shell-ready.js';
import type { Io } from './ui.js';

/**
 * What ends piped input: the last line finished (a script's last line may lack its newline), then
 * Ctrl-D, then ` exit` (a leading space keeps it out of a bash history that ignores such lines).
 * Ctrl-D alone is not enough: one that reaches the terminal while the shell runs a command, behind
 * lines it has not read yet, is taken by the terminal's own line discipline and never reaches the
 * shell (seen about one time in four with busybox ash: the shell then waited at its prompt for
 * ever). `exit` is a line, read as any other; without a status it exits with the last command's,
 * as Ctrl-D does. When Ctrl-D did end the shell, nothing reads the rest; when it ended a program
 * that read the terminal (`cat`), `exit` ends the shell, as a person would type it.
 */
function endOfInput(lastByte: number | undefined): Buffer {
  const finish = lastByte === undefined || lastByte === 0x0a || lastByte === 0x0d ? '' : '\n';
  return Buffer.from(`${finish}\x04 exit\n`);
}

/**
 * A shell in a sandbox, on a terminal there. From a local terminal it is interactive: the local
 * terminal goes raw (every key goes to the sandbox, Ctrl-C included), the window size follows,
 * and the terminal is restored however it ends. From a pipe or a file (`alacarte shell ID <
 * script`) every line runs once, in order: nothing is sent before the shell is shown to read
 * (sdk/shell-ready.ts; what the terminal showed until then is not shown), and the end of input
 * ends the shell as Ctrl-D and `exit` do ({@link endOfInput}). Resolves with the shell's exit status; throws when the node
 * closes the terminal for another reason (too many terminals, the node going away) or the shell
 * does not read within `ready.timeoutMs` (then none of the input was sent).
 */
export async function runShell(
  sdk: Alacarte,
  id: string,
  io: Io,
  options: { ready?: ShellReadyOptions } = {},
): Promise<number> {
  const stdin = process.stdin;
  const size = () => ({ cols: io.stdout.columns || 80, rows: io.stdout.rows || 24 });
  const terminal = await sdk.attach(id, size());
  const raw = stdin.isTTY === true;
  let closed: { code: number; reason: string } | undefined;
  terminal.once('exit', (code: number, reason: string) => {
    closed = { code, reason };
  });
  const onResize = () => {
    const s = size();
    terminal.resize(s.cols, s.rows);
  };
  try {
    if (!raw) {
      // A person types again when nothing answers; a script has no second chance.
      const readiness = await untilShellReads(terminal, options.ready);
      if (!readiness.ready) {
        io.stdout.write(readiness.shown);
        return shellStatus(closed);
      }
    }
    if (raw) stdin.setRawMode(true);
    io.stdout.on('resize', onResize);
    await new Promise<void>((resolve, reject) => {
      terminal.on('data', (chunk: Buffer) => io.stdout.write(chunk));
      terminal.once('end', resolve);
      terminal.once('close', resolve);
      terminal.once('error', reject);
      terminal.resume();
      let lastByte: number | undefined;
      stdin.on('data', (chunk: Buffer) => {
        lastByte = chunk.at(-1) ?? lastByte;
        terminal.write(chunk);
      });
      // The attach socket has no half-close: ending it ends the shell, output and all. Input piped in
      // (`alacarte shell ID < script`) ends as typed Ctrl-D and `exit` do, so the shell reads it all,
      // runs it and exits with its own status, as `ssh host < script` does.
      stdin.once('end', () => (raw ? terminal.end() : terminal.write(endOfInput(lastByte))));
      stdin.resume();
    });
  } finally {
    io.stdout.off('resize', onResize);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
    stdin.removeAllListeners('data');
    terminal.destroy();
  }
  return shellStatus(closed);
}

/** WebSocket close codes that end a terminal without an error (RFC 6455 §7.4.1). */
const NORMAL_CLOSE = new Set([1000, 1005]);

/**
 * The shell's status from how the node closed the terminal (`exit N` when the shell ended). A close
 * for another reason is no status of the shell's: it is an error (e.g. 1013 `at most 4 terminals at
 * once per lease`), not a silent 0.
 */
function shellStatus(closed: { code: number; reason: string } | undefined): number {
  if (!closed) return 0;
  const m = /^exit (\d+)$/.exec(closed.reason);
  if (m) return Number(m[1]);
  if (NORMAL_CLOSE.has(closed.code)) return 0;
  if (closed.code === 1006)
    throw new Error('the connection to the node was lost (the terminal closed without a word)');
  throw new Error(`the node closed the terminal: ${closed.reason || `WebSocket close code ${closed.code}`}`);
}
