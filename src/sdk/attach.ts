import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { AlacarteApiError, AlacarteNetworkError } from './errors.js';

/**
 * An interactive terminal in a sandbox over the attach WebSocket: bytes written go to the shell's
 * input (binary frames), bytes read are its output. `resize` sends the API's resize message. The
 * stream ends when the shell exits or the connection closes. Reading is flow-controlled: while the
 * consumer does not read, the socket is paused and the node is pushed back on (it then pauses the
 * shell), so a flood of output is never held here.
 */
export class LeaseTerminal extends Duplex {
  constructor(private readonly ws: WebSocket) {
    super();
    // Nothing is taken off the socket before the consumer reads: what arrives (or fails) right
    // after the upgrade then reaches listeners that exist, rather than an unhandled 'error'.
    ws.pause();
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (!isBinary) {
        this.emit('control', data.toString());
        return;
      }
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (!this.push(chunk)) ws.pause();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.emit('exit', code, reason.toString());
      this.push(null);
    });
    ws.on('error', (err) => this.destroy(err));
  }

  resize(cols: number, rows: number): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  override _read(): void {
    this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback();
      return;
    }
    this.ws.send(chunk, { binary: true }, (err) => callback(err ?? null));
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.ws.close(1000);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.terminate();
    callback(err);
  }
}

/**
 * Largest WebSocket message the client takes from a node, in bytes. A node sends terminal output
 * in pipe-sized pieces (64 KiB at most); a larger message would be held whole in memory before
 * anything is shown, so the connection is closed (1009) instead.
 */
export const MAX_TERMINAL_MESSAGE_BYTES = 1024 * 1024;

export function attachTerminal(
  url: string,
  token: string,
  size: { cols?: number; rows?: number },
): Promise<LeaseTerminal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${token}` },
      maxPayload: MAX_TERMINAL_MESSAGE_BYTES,
    });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        if (text.length < 4096) text += c.toString();
      });
      res.on('end', () => {
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON: the status says enough
        }
        const code = typeof body.error === 'string' ? body.error : `http_${res.statusCode}`;
        const message = typeof body.message === 'string' ? body.message : `HTTP ${res.statusCode}`;
        reject(new AlacarteApiError(code, res.statusCode ?? 0, message, body));
      });
    });
    ws.once('error', (err) => reject(new AlacarteNetworkError(url, { cause: err })));
    ws.once('open', () => {
      const terminal = new LeaseTerminal(ws);
      if (size.cols && size.rows) terminal.resize(size.cols, size.rows);
      resolve(terminal);
    });
  });
}
