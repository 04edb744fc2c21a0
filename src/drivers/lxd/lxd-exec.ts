import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import WebSocket, { createWebSocketStream } from 'ws';
import { z } from 'zod';
import { execCommand } from './in-instance.js';
import { type LxdClient, LxdError, type LxdOperation } from './lxd-client.js';

/** The secrets of an exec operation's websockets (doc: rest-api "instances/{name}/exec"). */
const execOperation = z.object({
  id: z.string().max(64),
  metadata: z.object({
    fds: z.record(z.string(), z.string().max(256)),
  }),
});

/** The finished exec operation: its exit status in `return`. */
const execReturn = z.object({ return: z.number().int() }).loose();

/** The environment variable each exec carries, so a timeout or kill() can find all it started. */
export const EXEC_TAG = 'ALACARTE_EXEC';

export interface LxdExecOptions {
  command: string[];
  /** The command's whole environment (LXD adds nothing to it). */
  env: Record<string, string>;
  /** Its working directory (the image's); the instance's `/` when absent. */
  cwd?: string;
  /** A terminal of this size (one websocket carries both directions); pipes otherwise. */
  terminal?: { cols: number; rows: number };
  /**
   * End the exec when the command exits, even if a process it started still holds its output,
   * which is then drained inside the instance (execCommand's `relayOutput`). Pipes only.
   */
  relayOutput?: boolean;
}

/** A command running through LXD's exec API, its channels as streams. */
export interface LxdExecProcess {
  /** Random tag in the command's environment (EXEC_TAG), inherited by what it starts. */
  tag: string;
  /** stdin (and, with a terminal, the terminal's output). */
  stdin: Duplex;
  /** stdout and stderr; absent with a terminal. */
  stdout?: Duplex;
  stderr?: Duplex;
  /** The control channel: signals and window size. */
  control: WebSocket;
  /** The exit status (128 + signal when killed), once LXD's operation has ended. */
  exited: Promise<number>;
}

/**
 * Starts `command` in an instance (POST /1.0/instances/<name>/exec with wait-for-websocket) and
 * connects its websockets; the command starts once they are all open. Output is back-pressured:
 * createWebSocketStream pauses the socket while the reader lags.
 */
export async function lxdExec(
  client: LxdClient,
  instance: string,
  options: LxdExecOptions,
): Promise<LxdExecProcess> {
  const tag = randomBytes(12).toString('hex');
  const answer = await client.call('POST', `/1.0/instances/${instance}/exec`, {
    // Exactly this environment, and LXD reading all the output before the end (execCommand).
    command: execCommand(
      { ...options.env, [EXEC_TAG]: tag },
      options.command,
      options.relayOutput === true && options.terminal === undefined,
      options.cwd,
    ),
    environment: { [EXEC_TAG]: tag },
    'wait-for-websocket': true,
    'record-output': false,
    interactive: options.terminal !== undefined,
    width: options.terminal?.cols ?? 0,
    height: options.terminal?.rows ?? 0,
  });
  const op = execOperation.parse(answer.metadata);
  const names = options.terminal ? ['0'] : ['0', '1', '2'];
  const secret = (name: string) => {
    const value = op.metadata.fds[name];
    if (!value) throw new Error(`LXD exec gave no websocket for fd ${name}`);
    return value;
  };
  // The control channel first: LXD may start the command once the others are open, and a command
  // that ends at once would end the operation before a late control channel could join it.
  const control = client.websocket(op.id, secret('control'));
  control.on('error', () => {});
  await opened(control);
  const sockets: WebSocket[] = [];
  const streams = new Map<string, Duplex>();
  for (const name of names) {
    const ws = client.websocket(op.id, secret(name));
    sockets.push(ws);
    // The stream listens at once, before the other channels are open and output flows.
    const s = createWebSocketStream(ws);
    s.on('error', () => {});
    // ws ends the stream when the socket closes, but a stream nobody reads ends only when read:
    // an unread empty output (stderr of a command that wrote none, which an SSH channel or a
    // download never touches) would hold `exited` for ever. Ends it then, as net does (crun's
    // spawn-output.ts); one with bytes still unread waits for its reader.
    ws.once('close', () => s.read(0));
    streams.set(name, s);
    // An empty text message is LXD's end of output; with a terminal the session is then over,
    // and LXD ends the operation once the client closes its side.
    if (options.terminal)
      ws.on('message', (data: Buffer, binary: boolean) => {
        if (!binary && data.length === 0) ws.close();
      });
  }
  await Promise.all(sockets.map(opened));
  control.on('error', () => {});
  control.on('message', () => {});
  const stream = (name: string) => streams.get(name) as Duplex;
  const status = (done: LxdOperation | undefined) => {
    const parsed = execReturn.safeParse(done?.metadata);
    return parsed.success ? parsed.data.return : 255;
  };
  // LXD fails the operation of a command that exits 126 or 127 ("Command not found", lxd/instance/
  // drivers/driver_lxc_cmd.go), its status still in the metadata: that status, as crun gives it.
  const exited = client
    .wait(op.id)
    .then(status, (e: unknown) => status(e instanceof LxdError ? e.operation : undefined));
  void exited.finally(() => control.close());
  return {
    tag,
    stdin: stream('0'),
    stdout: options.terminal ? undefined : stream('1'),
    stderr: options.terminal ? undefined : stream('2'),
    control,
    exited,
  };
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ws.readyState === WebSocket.OPEN) resolve();
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
}

/** Sends a signal to the exec'd process itself (its children are the caller's to kill). */
export function sendSignal(control: WebSocket, signal: number): void {
  if (control.readyState === WebSocket.OPEN) control.send(JSON.stringify({ command: 'signal', signal }));
}

/** How long resizeTerminal waits for LXD to confirm it has read the resize. */
const RESIZE_ACK_MS = 10_000;

/**
 * Tells the exec'd terminal its new size, and resolves once LXD has applied it: the control
 * channel's handler (LXD's lxd/instance_exec.go) reads one message at a time and sets the size
 * before it reads the next frame, so the pong to a ping sent after the resize comes back only
 * once the size is set. Without that wait, input sent next on the terminal's own websocket could
 * reach the shell first (a `stty size` seeing the old size). Resolves anyway when the channel
 * closes or after RESIZE_ACK_MS (a proxy in between may answer pings itself).
 */
export function resizeTerminal(control: WebSocket, cols: number, rows: number): Promise<void> {
  if (control.readyState !== WebSocket.OPEN) return Promise.resolve();
  control.send(
    JSON.stringify({ command: 'window-resize', args: { width: String(cols), height: String(rows) } }),
  );
  const token = randomBytes(8);
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      control.off('pong', onPong);
      control.off('close', done);
      resolve();
    };
    const onPong = (data: Buffer) => {
      if (data.equals(token)) done();
    };
    const timer = setTimeout(done, RESIZE_ACK_MS);
    control.on('pong', onPong);
    control.once('close', done);
    control.ping(token);
  });
}
