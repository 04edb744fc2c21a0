import type { ExecResult } from '../compute-driver.js';
import { IN_SANDBOX } from './oci-spec.js';

/**
 * Run inside the sandbox by the host's busybox (present in every image at /run/alacarte/bin): checks
 * that the command exists, starts it in the background with its input, output and errors on
 * /dev/null, prints its pid (as the sandbox numbers it) and exits at once. The command reaches it
 * as "$@", never as code. The job stays in the exec's own session, which nothing ends but the
 * lease (a later exec's timeout kills only that exec's session).
 */
const LAUNCHER = [
  'command -v "$1" >/dev/null 2>&1 || { echo "$1: not found" >&2; exit 127; }',
  '"$@" </dev/null >/dev/null 2>&1 &',
  'echo "$!"',
].join('\n');

/** The command that starts `command` detached (see LAUNCHER); run it as an ordinary exec. */
export function backgroundCommand(command: readonly string[]): string[] {
  return [IN_SANDBOX.busybox, 'sh', '-c', LAUNCHER, 'alacarte-background', ...command];
}

/**
 * The pid a launcher printed, or undefined when it did not start the command (its exit code and
 * stderr then say why, e.g. 127 and "nosuch: not found").
 */
export function backgroundPid(result: ExecResult): number | undefined {
  if (result.exitCode !== 0 || result.timedOut) return undefined;
  const text = result.stdout.toString('utf8').trim();
  if (!/^[0-9]{1,9}$/.test(text)) return undefined;
  const pid = Number(text);
  return pid > 0 ? pid : undefined;
}
