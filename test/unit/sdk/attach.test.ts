import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';
import { attachTerminal, MAX_TERMINAL_MESSAGE_BYTES } from '../../../src/sdk/attach.js';

/**
 * Issue 9, section 3, the client's side: a node (or whatever answers at its address) that floods
 * the SDK's terminal cannot make the client hold the flood.
 */
let server: WebSocketServer | undefined;
afterEach(async () => {
  for (const c of server?.clients ?? []) c.terminate();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function node(onConnection: (socket: WsSocket) => void): Promise<string> {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  server.on('connection', onConnection);
  await new Promise((resolve) => server?.once('listening', resolve));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/leases/lse_x/attach`;
}

describe('SDK terminal bounds', () => {
  it('closes the terminal on a message larger than its bound instead of holding it', async () => {
    // Sent at once: it may arrive with the upgrade's answer, before anyone listens.
    const url = await node((socket) => socket.send(Buffer.alloc(4 * 1024 * 1024, 0x79), { binary: true }));
    const terminal = await attachTerminal(url, 'credential', {});
    await sleep(200);
    let received = 0;
    terminal.on('data', (b: Buffer) => {
      received += b.length;
    });
    const failed = await new Promise<Error | undefined>((resolve) => {
      terminal.once('error', resolve);
      terminal.once('close', () => resolve(undefined));
      setTimeout(() => resolve(new Error('neither closed nor failed')), 10_000);
    });
    expect(failed?.message).toMatch(/max payload/i);
    expect(received).toBe(0);
    expect(MAX_TERMINAL_MESSAGE_BYTES).toBeLessThan(4 * 1024 * 1024);
  });

  it('stops reading while its consumer does not, so a flooding node is pushed back on', async () => {
    let nodeSide: WsSocket | undefined;
    const url = await node((socket) => {
      nodeSide = socket;
      const chunk = Buffer.alloc(64 * 1024, 0x79);
      const flood = () => {
        if (socket.readyState !== socket.OPEN) return;
        // Like the node: send while the client takes it, up to 64 MiB queued here.
        if (socket.bufferedAmount < 64 * 1024 * 1024) socket.send(chunk, { binary: true });
        setImmediate(flood);
      };
      flood();
    });
    const terminal = await attachTerminal(url, 'credential', {});
    // Nobody reads the terminal for two seconds.
    await sleep(2000);
    expect(terminal.readableLength).toBeLessThan(1024 * 1024);
    // What the client did not take waits at the node's end.
    expect(nodeSide?.bufferedAmount ?? 0).toBeGreaterThan(1024 * 1024);
    terminal.destroy();
  });
});
