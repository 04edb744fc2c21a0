import { Duplex } from 'node:stream';
import { type ConnectionBudget, openRelay } from './port-proxy.js';

/**
 * A TCP connection to `127.0.0.1:<port>` inside a sandbox as a stream (ComputeDriver.connect): the
 * relay of port-proxy.ts (nsenter into the sandbox's network namespace as nobody, then `nc`) with
 * its pipes as the two sides. It takes a slot of the lease's connection budget, the one its
 * published ports share, and gives it back when the stream closes. Undefined when the budget is
 * spent. The end of input is not passed on (a relay that saw it would quit before the answer), so
 * the stream ends when the port closes its side; destroy() kills the relay.
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
  const stream = new Duplex({
    // Back-pressure both ways: a chunk is taken from the pipe only when the consumer asks for it.
    read() {
      child.stdout.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (child.stdin.write(chunk)) callback();
      else child.stdin.once('drain', () => callback());
    },
    final(callback) {
      callback();
    },
    destroy(err, callback) {
      child.kill('SIGKILL');
      callback(err);
    },
  });
  child.stdout.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) child.stdout.pause();
  });
  child.stdout.once('end', () => stream.push(null));
  child.once('error', (err) => stream.destroy(err));
  let released = false;
  stream.once('close', () => {
    if (!released) budget.release();
    released = true;
    child.kill('SIGKILL');
  });
  return stream;
}
