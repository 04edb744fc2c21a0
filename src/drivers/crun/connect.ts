import { Duplex, type Readable, type Writable } from 'node:stream';
import { type ConnectionBudget, openRelay } from './port-proxy.js';

/**
 * A TCP connection to `127.0.0.1:<port>` inside a sandbox as a stream (ComputeDriver.connect): the
 * relay of port-proxy.ts (nsenter into the sandbox's network namespace as nobody, then `nc`) with
 * its pipes as the two sides (relayStream). It takes a slot of the lease's connection budget, the
 * one its published ports share, and gives it back when the stream closes. Undefined when the
 * budget is spent.
 */
export function connectInSandbox(
  netnsPid: number,
  port: number,
  busybox: string,
  budget: ConnectionBudget,
): Duplex | undefined {
  if (!budget.take()) return undefined;
  const child = openRelay(netnsPid, port, busybox);
  child.stdin.on('error', () => {});
  const stream = relayStream(child.stdin, child.stdout, () => child.kill('SIGKILL'), budget);
  child.once('error', (err) => stream.destroy(err));
  return stream;
}

/**
 * A relay process's pipes (`nc` to a port inside a sandbox: crun's or LXD's connect()) as one
 * stream that holds a slot of the lease's connection `budget`, taken by the caller and given back
 * when the stream closes. The end of input is not passed on (a relay that saw it would quit before
 * the answer), so the stream ends when the port closes its side; destroy() and the close call
 * `kill`.
 */
export function relayStream(
  stdin: Writable,
  stdout: Readable,
  kill: () => void,
  budget: ConnectionBudget,
): Duplex {
  const stream = new Duplex({
    // Back-pressure both ways: a chunk is taken from the pipe only when the consumer asks for it.
    read() {
      stdout.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (stdin.write(chunk)) callback();
      else stdin.once('drain', () => callback());
    },
    final(callback) {
      callback();
    },
    destroy(err, callback) {
      kill();
      callback(err);
    },
  });
  stdout.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) stdout.pause();
  });
  stdout.once('end', () => stream.push(null));
  // The relay's end is the connection's (it ends when the port closes its side, or at once when
  // nothing listens): the stream closes once its reader has it all, whatever the writing side does
  // (a write into the relay's closed input never completes, and held the slot for good).
  stream.once('end', () => stream.destroy());
  let released = false;
  stream.once('close', () => {
    if (!released) budget.release();
    released = true;
    kill();
  });
  return stream;
}
