import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { failureText } from '../../../src/cli/failure.js';
import { ConfigError } from '../../../src/config.js';

/** What `alacarte serve` and the other operator commands print when they fail. */
describe('the line a failed operator command prints', () => {
  it('is the error in its own words, without the Error: of its class', () => {
    expect(failureText(new Error('cannot open the store at postgres://a:***@db/x: refused'), 'serve')).toBe(
      'alacarte: cannot open the store at postgres://a:***@db/x: refused\n',
    );
    expect(failureText(new ConfigError('invalid configuration: port: expected number'), 'serve')).toBe(
      'alacarte: invalid configuration: port: expected number\n',
    );
  });

  it('names the help to read after a mistyped option', () => {
    let err: unknown;
    try {
      parseArgs({ args: ['--prot', '1'], options: { port: { type: 'string' } }, strict: true });
    } catch (e) {
      err = e;
    }
    expect(failureText(err, 'serve')).toBe(
      "alacarte: Unknown option '--prot'\nhint: see: alacarte serve --help\n",
    );
    expect(failureText(err, 'image')).toContain('hint: see: alacarte image help\n');
  });
});
