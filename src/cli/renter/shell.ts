import type { Alacarte } from '../../sdk/client.js';
import type { Io } from './ui.js';

/**
 * An interactive shell in a sandbox: the local terminal goes raw (every key goes to the sandbox,
 * Ctrl-C included), the window size follows, and the terminal is restored however it ends.
 */
/** Ctrl-D: on a terminal at the start of a line, the end of the shell's input. */
const END_OF_INPUT = Buffer.from([0x04]);

export async function runShell(sdk: Alacarte, id: string, io: Io): Promise<number> {
  const stdin = process.stdin;
  const size = () => ({ cols: io.stdout.columns || 80, rows: io.stdout.rows || 24 });
  const terminal = await sdk.attach(id, size());
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const onResize = () => {
    const s = size();
    terminal.resize(s.cols, s.rows);
  };
  io.stdout.on('resize', onResize);
  let exitCode = 0;
  terminal.once('exit', (_code: number, reason: string) => {
    const m = /^exit (\d+)$/.exec(reason);
    if (m) exitCode = Number(m[1]);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      terminal.on('data', (chunk: Buffer) => io.stdout.write(chunk));
      terminal.once('end', resolve);
      terminal.once('close', resolve);
      terminal.once('error', reject);
      stdin.on('data', (chunk: Buffer) => terminal.write(chunk));
      // The attach socket has no half-close: ending it ends the shell, output and all. Input piped in
      // (`alacarte shell ID < script`) ends as a typed Ctrl-D does, so the shell reads it all, runs
      // it and exits with its own status, as `ssh host < script` does.
      stdin.once('end', () => (raw ? terminal.end() : terminal.write(END_OF_INPUT)));
      stdin.resume();
    });
  } finally {
    io.stdout.off('resize', onResize);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
    stdin.removeAllListeners('data');
    terminal.destroy();
  }
  return exitCode;
}
