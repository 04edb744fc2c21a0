import { CLI } from '../../helpers/cli.js';
import { type ProcessResult, runProcess, type Typing } from '../../helpers/run-process.js';

export type CliResult = ProcessResult;

/** Runs the built `alacarte` with its own $ALACARTE_HOME and node URL, as a user would. */
export function runCli(
  args: string[],
  env: { home: string; url: string },
  options: { input?: string; typing?: Typing; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return runProcess(process.execPath, [CLI, ...args], {
    input: options.input,
    typing: options.typing,
    env: { ALACARTE_HOME: env.home, ALACARTE_URL: env.url, ...options.env },
  });
}

/** Runs it and parses its --json output, failing loudly with stderr when it did not succeed. */
export async function runJson<T = Record<string, unknown>>(
  args: string[],
  env: { home: string; url: string },
): Promise<T> {
  const r = await runCli([...args, '--json'], env);
  if (r.code !== 0) throw new Error(`alacarte ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
