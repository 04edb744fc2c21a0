import type { Duplex } from 'node:stream';
import type { AcceptConnection, RejectConnection, ServerChannel, TcpipRequestInfo } from 'ssh2';
import type { ComputeDriver } from '../drivers/compute-driver.js';

/**
 * Destinations a local forward (`ssh -L`) may name: the sandbox's own loopback, nothing else
 * (IPv4 or IPv6: the relay connects to whichever the port's server listens on, relayScript).
 */
const SANDBOX_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * A `direct-tcpip` channel (`ssh -L PORT:localhost:PORT`, RFC 4254 section 7.2) to a TCP port on
 * the sandbox's own loopback, through the driver's connect() (a relay inside the sandbox's network
 * namespace). Any other destination is refused: the node never connects anywhere for a tenant.
 * Bytes flow both ways back-pressured; either side closing closes the other. Answers a function
 * that cuts the forward, or undefined when refused; `onClose` is called once the channel has closed.
 */
export async function forward(
  accept: AcceptConnection<ServerChannel>,
  reject: RejectConnection,
  info: TcpipRequestInfo,
  leaseId: string,
  driver: Pick<ComputeDriver, 'connect'>,
  onClose: () => void,
): Promise<(() => void) | undefined> {
  if (!SANDBOX_HOSTS.has(info.destIP) || !Number.isInteger(info.destPort) || info.destPort < 1) {
    reject();
    return undefined;
  }
  let stream: Duplex;
  try {
    stream = await driver.connect({ leaseId }, info.destPort);
  } catch {
    reject();
    return undefined;
  }
  const channel = accept();
  channel.on('error', () => undefined);
  stream.on('error', () => channel.destroy());
  channel.pipe(stream);
  stream.pipe(channel);
  channel.once('close', () => {
    stream.destroy();
    onClose();
  });
  return () => {
    stream.destroy();
    channel.destroy();
  };
}
