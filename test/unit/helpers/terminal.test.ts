import { describe, expect, it } from 'vitest';
import { SHELL_MARKER, typeUntil, waitForShell } from '../../helpers/terminal.js';

/**
 * A terminal whose shell drops the first `lost` lines typed (as one that sets up its line editing
 * late does) and echoes every line; it runs only `echo` of a quoted word.
 */
function fakeShell(lost: number) {
  const typed: string[] = [];
  let screen = '';
  return {
    typed,
    screen: () => screen,
    write(text: string) {
      typed.push(text);
      screen += text.replace(/\n$/, '\r\n'); // the terminal's echo comes even for a dropped line
      if (typed.length <= lost) return;
      const word = /^echo (\S+)\n$/.exec(text)?.[1];
      if (word) screen += `${word.replaceAll('"', '')}\r\n`;
    },
  };
}

describe('typing into a fresh terminal', () => {
  it('types the line again until its answer shows', async () => {
    const shell = fakeShell(2);
    await typeUntil(shell, 'echo an""swer', shell.screen, /answer\r?\n/, { timeoutMs: 20 });
    expect(shell.typed).toEqual(['echo an""swer\n', 'echo an""swer\n', 'echo an""swer\n']);
  });

  it('gives up after its tries, saying what the terminal showed', async () => {
    const shell = fakeShell(10);
    await expect(
      typeUntil(shell, 'echo an""swer', shell.screen, /answer\r?\n/, { tries: 3, timeoutMs: 20 }),
    ).rejects.toThrow(
      /no answer matching .* after typing "echo an\\"\\"swer" 3 times; the terminal showed: .*echo an/,
    );
    expect(shell.typed).toHaveLength(3);
  });

  it('is not satisfied by the echo of its marker, only by its output', async () => {
    const echoOnly = fakeShell(10);
    await expect(waitForShell(echoOnly, echoOnly.screen, { tries: 2, timeoutMs: 20 })).rejects.toThrow();
    expect(echoOnly.screen()).toContain(SHELL_MARKER.line);
    const reading = fakeShell(1);
    await waitForShell(reading, reading.screen, { timeoutMs: 20 });
    expect(reading.typed).toHaveLength(2);
  });

  it('stops when aborted', async () => {
    const shell = fakeShell(10);
    const stop = new AbortController();
    const typing = typeUntil(shell, 'echo x', shell.screen, /never/, { signal: stop.signal });
    stop.abort();
    await expect(typing).rejects.toThrow();
    expect(shell.typed).toHaveLength(1);
  });
});
