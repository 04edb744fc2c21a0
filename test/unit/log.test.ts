import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';

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
