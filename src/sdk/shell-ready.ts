import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';

/**
 * Why this exists: a shell on a fresh terminal may discard what reached the terminal before it set
 * up its line editing (busybox ash and bash were seen to drop the first line of a piped script on a
 * loaded node). A person at a keyboard types again when nothing answers; a script piped in is all
 * there at once and has no second chance. So, before input that is not typed by a person is sent,
 * the shell is shown to read: a harmless probe line is typed, again with growing pauses while no
 * answer comes, until its output shows. The other ways were weighed and left:
 * - waiting for the first output (the prompt) is not enough: busybox ash prints its banner before it
 *   sets up line editing, a login profile may print anything, and output says nothing about input;
 * - the API's non-terminal path (POST /exec with `stdin`) takes the input whole and answers at the
 *   end, within a timeout and an output cap: no streaming, no long scripts, no `cat | alacarte shell`.
 * The probe proves what matters: a line was read whole and run. A probe that was dropped never
 * answers; one that answers means every later one (sent after it) is read too, so the wait ends when
 * the last one typed has answered and nothing of the probes is left in the shell's input. Their
 * echo and output, with everything the terminal showed before (banner, first prompt), are not
 * shown: the caller's output starts after the last answer.
 */

/** Bounds of {@link untilShellReads}. */
export interface ShellReadyOptions {
  /** How long the shell is given to answer, in milliseconds, all retyping included (default 60000). */
  timeoutMs?: number;
  /** The first pause before the probe is typed again, in milliseconds; it doubles up to 8x (default 1000). */
  retypeMs?: number;
}

/** How a wait for the shell ended. `shown` is the end of what the terminal showed meanwhile. */
export type ShellReadiness = { ready: true } | { ready: false; reason: 'ended'; shown: string };

/** The shell did not answer the probe in time; nothing but the probe was sent to it. */
export class ShellNotReadyError extends Error {
  constructor(
    readonly waitedMs: number,
    /** The end of what the terminal showed meanwhile (at most {@link SHOWN_TAIL_CHARS} characters). */
    readonly shown: string,
  ) {
    super(
      `the shell in the sandbox did not read its input within ${Math.round(waitedMs / 1000)} s (none of yours was sent); the terminal showed: ${JSON.stringify(shown)}`,
    );
    this.name = 'ShellNotReadyError';
  }
}

/** What the probe types is `echo <prefix>""<nonce>-<n>`, so its echo never reads as its answer. */
const PROBE_PREFIX = 'alacarte-';
const PROBE_REST = 'ready';
/** Held output searched for the answer, in characters: a little more than one answer line. */
const WINDOW_CHARS = 4096;
/** How much of the held output an error quotes. */
export const SHOWN_TAIL_CHARS = 300;
/** Retyping stops doubling its pause at this multiple of the first. */
const MAX_BACKOFF = 8;

/**
 * Waits until the shell on a fresh `terminal` reads and runs a line, typing a probe line (a leading
 * space keeps it out of a bash history that ignores such lines) and taking its output off the
 * terminal. Resolves `{ready: true}` with the terminal paused and what the shell printed after the
 * probe's answer put back in front, so the caller reads on (`on('data')`, then `resume()`) as if no
 * probe had been; or `{ready: false, reason: 'ended'}` when the terminal ended before an answer
 * (its `exit` event says why). Rejects with {@link ShellNotReadyError} after `timeoutMs` without an
 * answer (the caller should then close the terminal), or with the terminal's own error.
 *
 * For input that is not typed by a person (a pipe, a file, a program); a person's keys go at once.
 */
export function untilShellReads(terminal: Duplex, options: ShellReadyOptions = {}): Promise<ShellReadiness> {
  const { timeoutMs = 60_000, retypeMs = 1000 } = options;
  const nonce = randomBytes(6).toString('hex');
  // Binary-safe and one character per byte: what follows the answer goes back unchanged. A line
  // may end in \r\r\n (runc's terminal in the sandbox adds a \r of its own to the shell's \r\n).
  const answer = new RegExp(`${PROBE_PREFIX}${PROBE_REST}-${nonce}-(\\d+)\\r*\\n`, 'g');
  const started = Date.now();
  let typed = 0;
  let answered = 0;
  let held = '';
  let retype: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;

  return new Promise<ShellReadiness>((resolve, reject) => {
    const finish = (end: () => void) => {
      clearTimeout(retype);
      clearTimeout(deadline);
      terminal.off('data', onData);
      terminal.off('end', onEnd);
      terminal.off('close', onEnd);
      terminal.off('error', onError);
      end();
    };
    const type = () => {
      typed++;
      terminal.write(` echo ${PROBE_PREFIX}""${PROBE_REST}-${nonce}-${typed}\n`);
      const pause = retypeMs * Math.min(2 ** (typed - 1), MAX_BACKOFF);
      // Once any probe answered, those typed after it are read too: no more typing, only waiting.
      retype = setTimeout(() => answered === 0 && type(), pause);
    };
    const onData = (chunk: Buffer) => {
      held += chunk.toString('latin1');
      answer.lastIndex = 0;
      let end = -1;
      for (let m = answer.exec(held); m; m = answer.exec(held)) {
        answered = Math.max(answered, Number(m[1]));
        end = answer.lastIndex;
      }
      if (answered > 0 && answered >= typed) {
        const rest = held.slice(end);
        finish(() => {
          terminal.pause();
          if (rest.length > 0) terminal.unshift(Buffer.from(rest, 'latin1'));
          resolve({ ready: true });
        });
        return;
      }
      // Keep only what a split answer (or an error message) needs; an answer already counted may go.
      held = held.slice(Math.max(end, held.length - WINDOW_CHARS, 0));
    };
    const onEnd = () => finish(() => resolve({ ready: false, reason: 'ended', shown: tail(held) }));
    const onError = (err: Error) => finish(() => reject(err));
    terminal.on('data', onData);
    terminal.once('end', onEnd);
    terminal.once('close', onEnd);
    terminal.once('error', onError);
    deadline = setTimeout(
      () => finish(() => reject(new ShellNotReadyError(Date.now() - started, tail(held)))),
      timeoutMs,
    );
    type();
  });
}

function tail(held: string): string {
  return Buffer.from(held.slice(-SHOWN_TAIL_CHARS), 'latin1').toString('utf8');
}
