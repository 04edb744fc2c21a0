import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback HTTP proxy in front of a mint that can lose the answer of a swap the mint did carry
 * out (the connection is cut after the mint answered), and can make a mint look like one without
 * NUT-19 answer caching (a repeated swap is sent with its outputs in another order, so the mint
 * cannot recognise it and must answer with an error).
 */
export class LossyProxy {
  /** Swaps whose answers are still to be dropped. */
  dropSwapAnswers = 0;
  /** Swaps still to be sent with their outputs reversed (defeats the mint's NUT-19 cache). */
  reorderSwaps = 0;
  /** Swaps and NUT-09 restores forwarded so far. */
  swaps = 0;
  restores = 0;

  private hold: { arrived: () => void; released: Promise<void> } | undefined;

  /**
   * Holds back the answer of the next swap (which the mint carries out at once) until `release`;
   * `answered` resolves when the mint has answered it.
   */
  holdNextSwap(): { answered: Promise<void>; release: () => void } {
    let release = () => {};
    let arrived = () => {};
    const answered = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.hold = { arrived, released };
    return { answered, release };
  }

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(upstream: string): Promise<LossyProxy> {
    const target = new URL(upstream);
    let proxy: LossyProxy | undefined;
    const server = createServer((req, res) => {
      void forward(req).then(
        async ({ status, headers, body }) => {
          const isSwap = req.method === 'POST' && (req.url ?? '').endsWith('/v1/swap');
          const hold = isSwap ? proxy?.hold : undefined;
          if (hold && proxy) {
            proxy.hold = undefined;
            hold.arrived();
            await hold.released;
          }
          if (isSwap && proxy && proxy.dropSwapAnswers > 0) {
            proxy.dropSwapAnswers--;
            req.socket.destroy();
            return;
          }
          res.writeHead(status, headers);
          res.end(body);
        },
        () => req.socket.destroy(),
      );
    });
    const forward = async (
      req: IncomingMessage,
    ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      let body = Buffer.concat(chunks);
      if (req.method === 'POST' && (req.url ?? '').endsWith('/v1/restore') && proxy) proxy.restores++;
      if (req.method === 'POST' && (req.url ?? '').endsWith('/v1/swap') && proxy) {
        proxy.swaps++;
        if (proxy.reorderSwaps > 0) {
          proxy.reorderSwaps--;
          const parsed = JSON.parse(body.toString('utf8')) as { outputs: unknown[] };
          parsed.outputs.reverse();
          body = Buffer.from(JSON.stringify(parsed));
        }
      }
      return new Promise((resolve, reject) => {
        const up = httpRequest(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
          },
          (upRes) => {
            const parts: Buffer[] = [];
            upRes.on('data', (c: Buffer) => parts.push(c));
            upRes.on('end', () =>
              resolve({
                status: upRes.statusCode ?? 502,
                headers: { 'content-type': String(upRes.headers['content-type'] ?? 'application/json') },
                body: Buffer.concat(parts),
              }),
            );
            upRes.on('error', reject);
          },
        );
        up.on('error', reject);
        up.end(req.method === 'GET' || req.method === 'HEAD' ? undefined : body);
      });
    };
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    proxy = new LossyProxy(server, `http://127.0.0.1:${port}`);
    return proxy;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
