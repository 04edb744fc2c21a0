import { describe, expect, it } from 'vitest';
import { AlacarteError } from '../../../src/core/errors.js';
import { EXEC_STDIN_MAX, execBody, execStdin, parseWith } from '../../../src/http/lease-schemas.js';

const parse = (body: unknown) => parseWith(execBody, body);
const refusal = (body: unknown) => {
  try {
    parse(body);
  } catch (e) {
    expect(e).toBeInstanceOf(AlacarteError);
    return { code: (e as AlacarteError).code, message: (e as AlacarteError).message };
  }
  throw new Error('accepted');
};

describe('exec body: encoding', () => {
  it('utf8 is the default; stdin is the text as given', () => {
    const body = parse({ command: ['cat'], stdin: 'héllo' });
    expect(body.encoding).toBe('utf8');
    expect(execStdin(body)).toBe('héllo');
  });

  it('base64 stdin stands for its bytes', () => {
    const bytes = Buffer.from([0, 255, 10, 128, 0xc3]);
    const body = parse({ command: ['cat'], stdin: bytes.toString('base64'), encoding: 'base64' });
    expect(Buffer.compare(execStdin(body) as Buffer, bytes)).toBe(0);
    expect(execStdin(parse({ command: ['cat'], encoding: 'base64' }))).toBeUndefined();
    expect((execStdin(parse({ command: ['cat'], stdin: '', encoding: 'base64' })) as Buffer).length).toBe(0);
  });

  it('refuses what is not canonical padded base64, with invalid_request', () => {
    for (const stdin of ['not base64!', 'QUJ', 'QU=D', 'QR==', 'QUI=\n', 'Q U I=', '-_8K', 'QUJD====']) {
      expect(refusal({ command: ['cat'], stdin, encoding: 'base64' })).toEqual({
        code: 'invalid_request',
        message: 'stdin: not valid base64 (RFC 4648, padded)',
      });
    }
    expect(refusal({ command: ['cat'], stdin: 'QUJD', encoding: 'hex' }).code).toBe('invalid_request');
  });

  it('bounds stdin: 1 MiB of text, or base64 of 1 MiB of bytes', () => {
    expect(refusal({ command: ['cat'], stdin: 'a'.repeat(EXEC_STDIN_MAX + 1) }).code).toBe('invalid_request');
    const max = Buffer.alloc(EXEC_STDIN_MAX, 7).toString('base64');
    expect((execStdin(parse({ command: ['cat'], stdin: max, encoding: 'base64' })) as Buffer).length).toBe(
      EXEC_STDIN_MAX,
    );
    const over = Buffer.alloc(EXEC_STDIN_MAX + 3, 7).toString('base64');
    expect(refusal({ command: ['cat'], stdin: over, encoding: 'base64' }).code).toBe('invalid_request');
  });
});
