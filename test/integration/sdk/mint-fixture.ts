import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createTestMint, createTestServer, type TestMint } from '../../unit/mint/harness.js';

/**
 * The node's mint over HTTP on loopback, behind a proxy that can lose answers: `drop(path)`
 * forwards each request to that path to the mint, lets it complete there, and then cuts the
 * connection before the answer reaches the wallet — what a crash or a network failure looks like
 * from the wallet's side — until `undrop()`.
 */
export interface MintFixture {
  mint: TestMint;
  mintUrl: string;
  drop(pathSuffix: string): void;
  undrop(): void;
  close(): Promise<void>;
}

export async function startMint(): Promise<MintFixture> {
  const mint = await createTestMint();
  const app: FastifyInstance = await createTestServer(mint);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const target = (app.server.address() as AddressInfo).port;
  const drops: string[] = [];
  const proxy: Server = createServer((req, res) => {
    const drop = drops.some((d) => req.url?.endsWith(d));
    const upstream = httpRequest(
      { host: '127.0.0.1', port: target, path: req.url, method: req.method, headers: req.headers },
      (up) => {
        if (drop) {
          up.resume();
          up.on('end', () => res.socket?.destroy());
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const port = (proxy.address() as AddressInfo).port;
  return {
    mint,
    mintUrl: `http://127.0.0.1:${port}/mint`,
    drop: (path) => drops.push(path),
    undrop: () => drops.splice(0),
    close: async () => {
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
      await app.close();
      await mint.close();
    },
  };
}
