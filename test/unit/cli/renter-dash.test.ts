import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../../src/cli/renter/commands.js';
import { UsageError } from '../../../src/cli/renter/ui.js';

const home = mkdtempSync(join(tmpdir(), 'alacarte-dash-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const io = { stdout: process.stdout, stderr: process.stderr, env: { HOME: home } };

async function usage(command: string, args: string[]): Promise<string> {
  const err = await runCommand(command, args, io).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  return (err as UsageError).message;
}

/** `--` ends the options; only rent and exec take a command line after it, the rest more arguments. */
describe('renter commands: arguments after --', () => {
  it('are checked as arguments, not dropped, by commands without a command line', async () => {
    expect(await usage('offers', ['--', 'x'])).toBe("unexpected argument 'x'");
    expect(await usage('cp', ['a', 'lse_x:/b', '--', 'c'])).toBe("unexpected argument 'c'");
    // A credential starting with '-' is an argument after --: refused, and not echoed whole.
    const credential = '-_QWERTYUIOPASDFGHJKLZXCVBNM0123456789abcdefg';
    const said = await usage('leases', ['add', 'lse_0123456789abcdefghjkmnpqrs', '--', credential]);
    expect(said).toContain('never on the command line (ps shows it)');
    expect(said).not.toContain(credential);
  });
});
