import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, logRef } from '../../src/log.js';

describe('the logger', () => {
  it('blanks out refund tokens of every mint, at the top level and one level down', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => {
      text += b.toString();
    });
    const log = createLogger({ destination: out });
    const refunds = [{ mint: 'http://m/mint', token: 'cashuBsecret1', amount: 5 }];
    log.info({ refunds, refund: 'cashuBsecret2' }, 'stopped');
    log.info({ body: { refunds } }, 'answer');
    await new Promise((r) => setImmediate(r));
    expect(text).toContain('stopped');
    expect(text).toContain('answer');
    expect(text).not.toContain('cashuBsecret');
  });
});

describe('the logger and x402', () => {
  it('blanks out x402 payment headers, which also unlock the replay of what they bought', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => {
      text += b.toString();
    });
    const log = createLogger({ destination: out });
    const headers = { 'payment-signature': 'eyJ4NDAyVmVyc2lvbiI6Mn0secret1', 'x-payment': 'eyJ4secret2' };
    log.info({ headers }, 'request');
    log.info({ req: { headers } }, 'request in');
    await new Promise((r) => setImmediate(r));
    expect(text).toContain('request in');
    expect(text).not.toContain('secret');
  });
});

describe('the logger and quote ids', () => {
  it('blanks out NUT-04/05 quote ids, which unlock a paid quote, and logs a digest that matches lines', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => {
      text += b.toString();
    });
    const log = createLogger({ destination: out });
    const id = '01a23b9c-quote-id-secret';
    log.info({ quote: id, quoteRef: logRef(id) }, 'melt paid');
    log.warn({ body: { quote: id } }, 'melt: state unknown');
    await new Promise((r) => setImmediate(r));
    expect(text).toContain('melt paid');
    expect(text).not.toContain('quote-id-secret');
    expect(text).toContain(logRef(id));
    expect(logRef(id)).toMatch(/^[0-9a-f]{12}$/);
    expect(logRef(id)).not.toBe(logRef(`${id}x`));
  });
});
