import type { ExecResult } from '../compute-driver.js';
import { DEFAULT_PATH, IN_SANDBOX } from './oci-spec.js';
import { PROGRAM_LOOKUP } from './program-lookup.js';

/**
 * Run inside the sandbox by the host's busybox shell (present in every image at /run/alacarte/bin):
 * looks the program up as an ordinary exec does, starts it in the background with its input, output
 * and errors on /dev/null, prints its pid (as the sandbox numbers it) and exits at once. Everything
 * reaches it as arguments ("$@"), never as code: `$1` the PATH to look in (without entries: the
 * shell's own, the job's environment being the launcher's), `$2` the program, `$3` how many
 * NAME=value entries follow, those entries, then the program's arguments.
 *
 * The lookup is an ordinary exec's (program-lookup.ts: PATH, never busybox's applets or the shell's
 * builtins; not found: 127; not an executable regular file: 126). The job is a subshell that drops
 * the SHLVL, PWD and OLDPWD the launcher's shell set, exports the entries given (the exec's whole
 * environment, which the launcher was started with: each variable of it is thus given back its
 * value, whatever the launcher did with it) and execs the program with `argv[0]` as given
 * (`exec -a`), so that it runs with exactly an ordinary exec's environment and command line.
 * Without entries (LXD, whose instance environment the node does not hold) it keeps the launcher's
 * environment less those three, which a lease's environment therefore cannot give such a job. The
 * launcher's own variables are named so that no image or lease plausibly sets them. The job stays
 * in the exec's own session, which nothing ends but the lease (a later exec's timeout kills only
 * that exec's session).
 */
const LAUNCHER = [
  'set -f',
  '_alacarte_c=$2 _alacarte_p=$1',
  '[ "$3" -gt 0 ] || _alacarte_p=$PATH',
  PROGRAM_LOOKUP,
  '_alacarte_n=$3; shift 3',
  '(',
  '  unset SHLVL PWD OLDPWD',
  '  while [ "$_alacarte_n" -gt 0 ]; do export "$1"; shift; _alacarte_n=$((_alacarte_n - 1)); done',
  '  exec -a "$_alacarte_c" -- "$_alacarte_f" "$@"',
  ') </dev/null >/dev/null 2>&1 &',
  'echo "$!"',
].join('\n');

/**
 * The command that starts `command` detached (see LAUNCHER); run it as an ordinary exec. `env`: the
 * exact environment the job gets (NAME=value entries; its PATH is where the program is looked up,
 * else DEFAULT_PATH's), or undefined for the environment the launcher itself runs with (LXD, whose
 * instance environment the node does not hold; the program is then looked up in that PATH).
 */
export function backgroundCommand(command: readonly string[], env?: readonly string[]): string[] {
  const [program = '', ...args] = command;
  if (env === undefined)
    return [IN_SANDBOX.busybox, 'sh', '-c', LAUNCHER, 'alacarte-background', '', program, '0', ...args];
  const path = env.findLast((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH.slice(5);
  return [
    IN_SANDBOX.busybox,
    'sh',
    '-c',
    LAUNCHER,
    'alacarte-background',
    path,
    program,
    String(env.length),
    ...env,
    ...args,
  ];
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
