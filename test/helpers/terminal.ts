import { setTimeout as sleep } from 'node:timers/promises';

// Why this exists: a shell on a fresh terminal may discard what was typed before it set up its
// line editing (seen on runc under load in CI: the first line of an attach session never ran,
// and a test that typed `...; exit` at once waited for a shell that would never end). A person
// types again when nothing answers; so do the tests, with these.
//
// Kept free of imports beyond Node's own: crun.test.ts transpiles this file alone for a child
// process that runs without the test runner.

/** Where keys are typed: a terminal stream, a child's stdin, a WebSocket wrapped in `write`. */
export interface Keyboard {
  /** Types `text` as it is; a returned promise (a browser's keyboard) is awaited. */
  write(text: string): unknown;
}

/** Bounds of {@link typeUntil}; the whole wait is at most `tries` × `timeoutMs`. */
export interface TypeUntilOptions {
  /** How many times the line is typed before giving up (default 6). */
  tries?: number;
  /** How long an answer is waited for after each typing, in milliseconds (default 5000). */
  timeoutMs?: number;
  /** What ends the line: `\n` (default), or `\r` (the Enter key through a raw local terminal). */
  enter?: string;
  /** Stops typing and waiting once aborted: the promise then rejects. */
  signal?: AbortSignal;
}

/**
 * Types `line` (plus `enter`) into `keyboard` until what the terminal shows, `screen()`, matches
 * `answer`; typed again after each `timeoutMs` without one, `tries` times in all. Resolves once
 * answered; rejects with an Error quoting the end of the screen when no answer came.
 *
 * Only for lines that may run more than once (`echo`, `tty`, `stty size`: never `exit` or one that
 * starts a server). `answer` must match the line's OUTPUT and not its echo by the terminal: type
 * `echo rea""dy` and wait for `ready`, or `echo $((6*7))` and wait for `42`. The whole screen is
 * searched, so the answer must also be one nothing earlier in the session shows.
 */
export async function typeUntil(
  keyboard: Keyboard,
  line: string,
  screen: () => string | Promise<string>,
  answer: RegExp,
  options: TypeUntilOptions = {},
): Promise<void> {
  const { tries = 6, timeoutMs = 5000, enter = '\n', signal } = options;
  for (let typed = 0; typed < tries; typed++) {
    signal?.throwIfAborted();
    await keyboard.write(`${line}${enter}`);
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (answer.test(await screen())) return;
      if (Date.now() >= until) break;
      await sleep(50, undefined, signal ? { signal } : undefined);
    }
  }
  const shown = (await screen()).slice(-500);
  throw new Error(
    `no answer matching ${answer} after typing ${JSON.stringify(line)} ${tries} times; the terminal showed: ${JSON.stringify(shown)}`,
  );
}

/** The marker {@link waitForShell} types, and what only its output (not its echo) shows. */
export const SHELL_MARKER = { line: 'echo shell-""reads', answer: /shell-reads\r*\n/ } as const;

/**
 * Waits until the shell on a fresh terminal reads what is typed: types a harmless marker command
 * until its output shows (see {@link typeUntil}). After it resolves, lines that must run exactly
 * once (`...; exit`) can be typed once. Same options and errors as {@link typeUntil}.
 */
export function waitForShell(
  keyboard: Keyboard,
  screen: () => string | Promise<string>,
  options: TypeUntilOptions = {},
): Promise<void> {
  return typeUntil(keyboard, SHELL_MARKER.line, screen, SHELL_MARKER.answer, options);
}

/** The keyboard of a terminal reached over the attach WebSocket: keys go as binary frames. */
export function socketKeyboard(socket: { send(data: Buffer, options: { binary: boolean }): void }): Keyboard {
  return { write: (text) => socket.send(Buffer.from(text), { binary: true }) };
}
