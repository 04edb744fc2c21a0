import type { RawData, WebSocket } from 'ws';
import { z } from 'zod';
import type { AttachSession, TerminalSize } from '../drivers/compute-driver.js';

/**
 * How much of what a client drives the node holds for one terminal. Every queue between the
 * WebSocket and the shell is bounded by one of these, whatever the client or the shell does.
 */
export interface TerminalBridgeLimits {
  /** Terminal input kept while the shell starts, in bytes; more closes the socket with 1009. */
  earlyInputBytes: number;
  /** Output queued towards the client (ws bufferedAmount) at which the shell's output is paused. */
  outputHighWaterBytes: number;
  /** Queued output at or below which the shell's output flows again. */
  outputLowWaterBytes: number;
}

export const DEFAULT_TERMINAL_LIMITS: TerminalBridgeLimits = {
  earlyInputBytes: 128 * 1024,
  outputHighWaterBytes: 256 * 1024,
  outputLowWaterBytes: 64 * 1024,
};

/** WebSocket close code "message too big" (RFC 6455 §7.4.1). */
export const CLOSE_TOO_BIG = 1009;

const resizeMessage = z
  .object({
    type: z.literal('resize'),
    cols: z.number().int().min(1).max(1000),
    rows: z.number().int().min(1).max(1000),
  })
  .strict();

/** What one WebSocket message means for the terminal: keystrokes, a resize, or nothing. */
export type TerminalInput =
  | { kind: 'bytes'; bytes: Buffer }
  | { kind: 'resize'; size: TerminalSize }
  | { kind: 'ignored' };

/**
 * Binary frames are terminal bytes; a text frame is a control message and only a valid resize
 * does anything. Any other text is dropped: typing it would let whatever produced a control
 * message (a confused client, a page script) run commands in the shell.
 */
export function terminalInput(data: RawData, isBinary: boolean): TerminalInput {
  // ws hands binary frames over as Buffers already (binaryType 'nodebuffer'): a copy here would
  // double the garbage a flood of input makes before the socket is paused.
  const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
  if (isBinary) return bytes.length > 0 ? { kind: 'bytes', bytes } : { kind: 'ignored' };
  const size = parseResize(bytes.toString('utf8'));
  return size ? { kind: 'resize', size } : { kind: 'ignored' };
}

function parseResize(text: string): TerminalSize | undefined {
  if (!text.startsWith('{') || text.length > 200) return undefined;
  try {
    const parsed = resizeMessage.safeParse(JSON.parse(text));
    return parsed.success ? { cols: parsed.data.cols, rows: parsed.data.rows } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Holds what a client sends while the shell starts, in order, up to a byte cap (a resize counts
 * as a few bytes, so no kind of message piles up). Returns false once the cap is passed; the
 * caller then closes the socket.
 */
export class EarlyInput {
  private readonly inputs: TerminalInput[] = [];
  private bytes = 0;

  constructor(private readonly cap: number) {}

  add(input: TerminalInput): boolean {
    if (input.kind === 'ignored') return true;
    this.bytes += input.kind === 'bytes' ? input.bytes.length : 16;
    if (this.bytes > this.cap) return false;
    this.inputs.push(input);
    return true;
  }

  /** Everything received so far, in order, and the buffer emptied. */
  take(): TerminalInput[] {
    return this.inputs.splice(0);
  }
}

/**
 * Relays a started shell and an open WebSocket with back-pressure both ways: the shell's output
 * is paused while the client has more than the high-water mark unread, and the socket stops
 * being read (TCP then pushes back on the client) while the shell's input is full or a resize is
 * being applied. So neither a client that stops reading nor one that types faster than the shell
 * reads grows the node. Input keeps its order: keys typed after a resize reach the shell after
 * the resize took effect. `early` is what arrived while the shell started. Resolves with the
 * shell's exit code; closing the socket ends the shell. `farewell`, asked once the shell has
 * exited, gives a last line to show before the close (the lease has ended, say), or undefined.
 */
export async function relayTerminal(
  socket: WebSocket,
  session: AttachSession,
  early: readonly TerminalInput[] = [],
  limits: TerminalBridgeLimits = DEFAULT_TERMINAL_LIMITS,
  farewell?: () => Promise<string | undefined>,
): Promise<number> {
  const { stream } = session;
  if (socket.readyState !== socket.OPEN) {
    // The client left (or was cut off) while the shell started: nothing to relay.
    session.close();
    return session.exited;
  }

  // The socket is read only while the shell takes input and no resize is under way.
  let inputBlocked = false;
  let resizing = false;
  const readAgain = () => {
    if (!inputBlocked && !resizing && socket.readyState === socket.OPEN) socket.resume();
  };
  // Messages ws had parsed before the pause took hold wait here; only a few can, but bound it.
  const held: TerminalInput[] = [];
  let heldBytes = 0;

  const type = (bytes: Buffer) => {
    if (stream.write(bytes) || inputBlocked) return;
    inputBlocked = true;
    socket.pause();
    stream.once('drain', () => {
      inputBlocked = false;
      readAgain();
    });
  };
  const deliver = (input: TerminalInput): void => {
    if (input.kind === 'bytes') type(input.bytes);
    if (input.kind !== 'resize') return;
    resizing = true;
    socket.pause();
    void session
      .resize(input.size)
      .catch(() => undefined)
      .finally(() => {
        resizing = false;
        while (!resizing) {
          const next = held.shift();
          if (!next) break;
          heldBytes -= next.kind === 'bytes' ? next.bytes.length : 0;
          deliver(next);
        }
        readAgain();
      });
  };
  const receive = (input: TerminalInput) => {
    if (input.kind === 'ignored') return;
    if (!resizing) return deliver(input);
    // Only the latest of consecutive resizes matters.
    const last = held[held.length - 1];
    if (input.kind === 'resize' && last?.kind === 'resize') {
      held[held.length - 1] = input;
      return;
    }
    heldBytes += input.kind === 'bytes' ? input.bytes.length : 0;
    if (heldBytes > limits.earlyInputBytes) {
      socket.close(CLOSE_TOO_BIG, 'too much input while the terminal was resized');
      return;
    }
    held.push(input);
  };
  socket.on('message', (data: RawData, isBinary: boolean) => receive(terminalInput(data, isBinary)));
  for (const input of early) receive(input);
  let outputPaused = false;
  // Called by ws once a frame has left for the kernel: the queue only shrinks here.
  const sent = () => {
    if (outputPaused && socket.bufferedAmount <= limits.outputLowWaterBytes) {
      outputPaused = false;
      stream.resume();
    }
  };
  stream.on('data', (chunk: Buffer) => {
    if (socket.readyState !== socket.OPEN) return;
    socket.send(chunk, { binary: true }, sent);
    if (!outputPaused && socket.bufferedAmount > limits.outputHighWaterBytes) {
      outputPaused = true;
      stream.pause();
    }
  });

  socket.on('close', () => session.close());
  socket.on('error', () => session.close());
  const code = await session.exited;
  const last = socket.readyState === socket.OPEN ? await farewell?.().catch(() => undefined) : undefined;
  if (last && socket.readyState === socket.OPEN) socket.send(Buffer.from(last, 'utf8'), { binary: true });
  if (socket.readyState === socket.OPEN) socket.close(1000, `exit ${code}`);
  return code;
}
