import type { ExecResult } from '../compute-driver.js';
import { DEFAULT_PATH, IN_SANDBOX } from './oci-spec.js';

/**
 * Run inside the sandbox by the host's busybox shell (present in every image at /run/alacarte/bin):
 * looks the program up as an ordinary exec does, starts it in the background with its input, output
 * and errors on /dev/null, prints its pid (as the sandbox numbers it) and exits at once. Everything
 * reaches it as arguments ("$@"), never as code: `$1` the PATH to look in (empty: the shell's own),
 * `$2` the program, `$3` how many NAME=value entries follow (`-`: none, the job keeps the
 * launcher's own environment less the SHLVL, PWD and OLDPWD its shell sets, which a lease's
 * environment therefore cannot give such a job), those entries, then the program's arguments.
 *
 * The lookup is the exec agent's (exec-agent.ts execScript, native/exec-agent.c): a name is searched
 * in PATH for an executable regular file, never taken as one of busybox's applets or the shell's
 * builtins (busybox's shell prefers its own `sleep` or `sh` to the image's, and would "start" `exit`
 * or `cd`); not found: 127; a path that is not an executable regular file: 126. The job starts
 * through busybox's `env`, with exactly the entries given (`-i`), as an ordinary exec's command gets
 * them (the shell would add its SHLVL and PWD); a program whose path holds `=` cannot be told from an
 * entry there, and is refused (126). The job stays in the exec's own session, which nothing ends
 * but the lease (a later exec's timeout kills only that exec's session).
 */
const LAUNCHER = [
  'set -f',
  'c=$2',
  'case $c in */*) f=$c ;; *)',
  '  f=; P=$1; [ -n "$P" ] || P=$PATH; IFS=:; for d in $P; do',
  '    [ -n "$d" ] || d=.; [ -f "$d/$c" ] && [ -x "$d/$c" ] && { f=$d/$c; break; }',
  '  done; unset IFS',
  '  [ -n "$f" ] || { echo "$c: not found" >&2; exit 127; } ;;',
  'esac',
  '[ -e "$f" ] || { echo "$c: not found" >&2; exit 127; }',
  '[ -f "$f" ] && [ -x "$f" ] || { echo "$c: cannot execute: not an executable file" >&2; exit 126; }',
  'n=$3; shift 3',
  // busybox env would take a path holding `=` for an entry, and one starting with `-` for an option.
  `case $f in *=*) echo "$c: cannot start a program whose path holds '=' in the background" >&2; exit 126 ;; esac`,
  'case $f in /*) ;; *) f=./$f ;; esac',
  'if [ "$n" = - ]; then',
  // The launcher's own environment, less what its shell added to it.
  '  set -- -u SHLVL -u PWD -u OLDPWD "$f" "$@"',
  'else',
  // The program's path goes in after the n entries, before its arguments: "$@" is rebuilt in one
  // pass over the list as it was (a for loop's words are expanded once, before it runs).
  '  i=0; for a do shift; [ "$i" = "$n" ] && set -- "$@" "$f"; set -- "$@" "$a"; i=$((i+1)); done',
  '  [ "$i" = "$n" ] && set -- "$@" "$f"',
  '  set -- -i "$@"',
  'fi',
  `${IN_SANDBOX.busybox} env "$@" </dev/null >/dev/null 2>&1 &`,
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
    return [IN_SANDBOX.busybox, 'sh', '-c', LAUNCHER, 'alacarte-background', '', program, '-', ...args];
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
