/**
 * What runs inside every LXD instance from /run/alacarte (bin/ holds the host's static busybox), so
 * that it works whatever the image holds: a read-only host directory, or files pushed through LXD's
 * file API (lxd-driver.ts, `delivery`).
 */
export const IN_INSTANCE = {
  runDir: '/run/alacarte',
  busybox: '/run/alacarte/bin/busybox',
  init: '/run/alacarte/bin/init.sh',
  kill: '/run/alacarte/bin/kill-tag.sh',
} as const;

/**
 * PID 1 of every instance (LXC's `lxc.init.cmd`, started with an empty environment): it ends the
 * instance at its deadline on its own, so that no control plane has to be alive for the deadline to
 * hold. When PID 1 exits the container stops, and LXD deletes it (the instance is ephemeral). The
 * deadline (epoch seconds) is read again every second from /run/alacarte/deadline, which
 * setDeadline replaces whole (renamed over), so a moved deadline applies within a second; a missing
 * file ends the instance (fail closed). It never forks: it waits with `read -t` on a FIFO nobody writes to, since a fork
 * fails once a tenant fills the pids limit and a failed fork is fatal in ash. SIGCHLD cuts the wait
 * short so reparented orphans are reaped at once. Its FIFO is made here when the files were
 * pushed (LXD's file API makes no FIFOs). Without a NIC, LXC leaves the instance's loopback
 * down: init brings it up, so that its programs can talk to each other over 127.0.0.1.
 */
export function instanceInit(): string {
  return `# alacarte LXD instance init
R=${IN_INSTANCE.runDir}
[ -p $R/bin/wait ] || $R/bin/busybox mkfifo -m 0600 $R/bin/wait
exec 3<>$R/bin/wait || exit 0
$R/bin/busybox ip link set lo up
trap : CHLD
while :; do
  d=0
  read -r d < $R/deadline || exit 0
  [ "$((d - EPOCHSECONDS))" -gt 0 ] || exit 0
  read -t 1 x <&3
done
`;
}

/**
 * Kills every process whose environment carries `ALACARTE_EXEC=<tag>` (lxd-exec.ts): what an exec
 * started, in whatever session or process group, since LXD signals only the exec'd process itself.
 * Shell built-ins only (no fork), so it works while the tenant holds the pids limit; a few rounds
 * catch processes forked while the first round ran.
 */
export function killTagScript(): string {
  return `# alacarte: kill an exec's processes
for round in 1 2 3 4 5; do
  n=0
  for p in /proc/[0-9]*; do
    while IFS= read -r -d "" v; do
      case $v in "ALACARTE_EXEC=$1") kill -9 "\${p#/proc/}" && n=1; break;; esac
    done < $p/environ
  done 2>/dev/null
  [ $n = 0 ] && exit 0
done
`;
}

/**
 * Rewrites /run/alacarte/deadline (`$1`) and lease.json (`$2`) inside an instance whose files were
 * pushed: each written beside and renamed over the old one (rename(2) is atomic), so a reader (init
 * every second, or the tenant) sees the old file or the new one, never a part. Shell built-ins and
 * the static busybox only.
 */
export function rewriteScript(): string {
  return `R=${IN_INSTANCE.runDir}
printf %s "$1" > $R/.deadline.tmp && $R/bin/busybox mv -f $R/.deadline.tmp $R/deadline || exit 1
printf %s "$2" > $R/.lease.json.tmp && $R/bin/busybox mv -f $R/.lease.json.tmp $R/lease.json || exit 1
`;
}

/** The environment LXD gives an exec that names none of these (lxd/instance_exec.go). */
export const LXD_EXEC_DEFAULTS: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  USER: 'root',
  LANG: 'C.UTF-8',
};

/**
 * Runs `$3...` (the first `$1` of them `NAME=value` pairs, the rest the command) with exactly that
 * environment, then lingers LINGER_SECONDS before it exits with the command's status. LXD 5.0 stops
 * reading a command's output as soon as the process it started has exited, before the pipe hangs up,
 * and dropped output the command wrote last (a loaded machine lost whole answers; a terminal lost a
 * shell's last lines): while this shell lingers, LXD reads everything out. The environment goes
 * through `env -i`, not through this shell's own, which would reset IFS and add PWD and SHLVL; a
 * bare command name is looked up on the command's PATH here, since busybox would otherwise run its
 * own applet of that name instead of the image's program.
 */
const LINGER_SECONDS = '0.2';
const RESOLVE_COMMAND = `n=$1; shift
P=; i=0
for a; do [ $i -lt $n ] || break; case $a in PATH=*) P=\${a#PATH=};; esac; i=$((i+1)); done
eval "c=\\\${$((n + 1))}"
case $c in
*/*) r=$c ;;
*) r=$c; IFS=:; for d in $P; do if [ -f "$d/$c" ] && [ -x "$d/$c" ]; then r=$d/$c; break; fi; done; unset IFS ;;
esac
i=0
for a; do shift; if [ $i = $n ]; then set -- "$@" "$r"; else set -- "$@" "$a"; fi; i=$((i+1)); done
`;
const EXEC_SCRIPT = `${RESOLVE_COMMAND}${IN_INSTANCE.busybox} env -i "$@"; s=$?
${IN_INSTANCE.busybox} sleep ${LINGER_SECONDS}
exit "$s"
`;

/** Rounds (of RELAY_ROUND_SECONDS) a relay may sit idle once the command exited: crun's 100 ms. */
const RELAY_QUIET_ROUNDS = 5;
const RELAY_ROUND_SECONDS = '0.02';
/**
 * The most a pipe holds (and what a relay reads at once): Linux's default of 16 pages, 64 KiB with
 * 4 KiB pages, 1 MiB with 64 KiB ones, which is also pipe-max-size, the most a tenant may set.
 */
const PIPE_BYTES = 1 << 20;

/**
 * EXEC_SCRIPT for a command whose exec must end when the command does (ComputeDriver.exec), as
 * crun's does: LXD 5.0 ends an exec only once every holder of its stdout and stderr has closed
 * them, and a background job (`server &`) inherits them. Here the command writes to two pipes of
 * this shell's own instead (FIFOs made in /dev, the container's own tmpfs, removed once open),
 * relayed to LXD's pipes by `dd`, so that only this shell and the relays hold LXD's.
 *
 * Once the command has exited, a relay is done with what it wrote when:
 * - it ended (end-of-file: nothing was left holding the pipe);
 * - it wrote PIPE_BYTES more than it had read when the command exited (a pipe is first in, first
 *   out, and held no more than that): a job writing without pause;
 * - it was seen between two chunks (/proc/<pid>/io rchar = wchar: nothing read is still unwritten,
 *   however slow LXD's reader) twice from the second look on, having read more in between: that
 *   later read, begun after the command had exited, took all the pipe held, the command's last
 *   bytes with it;
 * - or it was seen so and idle for RELAY_QUIET_ROUNDS (the pipe is empty).
 * A relay still running then is replaced by a `cat` into /dev/null, started before the relay is
 * killed so that the pipe never lacks a reader: the job keeps writing, never meeting SIGPIPE or a
 * full pipe, as with crun's drain (output-drain.ts), until it closes its output. What the job wrote
 * before that may reach the exec's output, as with crun.
 *
 * rchar and wchar count only the pipes when the relay did not exec (an exec counts the binary it
 * read): hence busybox's own `dd` applet, which its shell runs in the forked child. A busybox that
 * would exec it never looks idle, and ends a relay only at end-of-file or past PIPE_BYTES; without
 * /proc/<pid>/io a relay is given RELAY_QUIET_ROUNDS. Everything here carries the exec's tag
 * (kill-tag.sh ends it on a timeout). Fd 9 is a FIFO nobody writes to: `read -t` on it waits without
 * a fork, and SIGCHLD (trapped) cuts the wait short when a relay ends. This shell's own messages
 * (ash reports a job killed by a signal) go to /dev/null, as crun prints none; fd 4 keeps LXD's
 * stderr open. Where no FIFO can be made, the command runs as EXEC_SCRIPT runs it.
 */
const RELAYED_EXEC_SCRIPT = `${RESOLVE_COMMAND}B=${IN_INSTANCE.busybox}
f=/dev/.alacarte-exec-$$
if ! $B mkfifo -m 0600 $f.o $f.e $f.w 2>/dev/null; then
  $B env -i "$@"; s=$?
  $B sleep ${LINGER_SECONDS}
  exit "$s"
fi
exec 3<>$f.o 4<>$f.e 9<>$f.w 5<$f.o 6>$f.o 7<$f.e 8>$f.e 3>&- 4>&-
$B rm -f $f.o $f.e $f.w
D="$B dd"; PATH=/nonexistent command -v dd >/dev/null && D=dd
$D bs=${PIPE_BYTES} <&5 2>/dev/null 5<&- 6>&- 7<&- 8>&- 9<&- &
o=$!
$D bs=${PIPE_BYTES} <&7 >&2 2>/dev/null 5<&- 6>&- 7<&- 8>&- 9<&- &
e=$!
exec 4>&2 2>/dev/null
(exec $B env -i "$@" >&6 2>&8 4>&- 5<&- 6>&- 7<&- 8>&- 9<&-); s=$?
exec 6>&- 8>&-
alive() { { read -r v v t u v < /proc/$1/stat; } 2>/dev/null && [ "$u" = $$ ] && [ "$t" != Z ]; }
trap : CHLD
oz= oq= ok=0 od=0 ez= eq= ek=0 ed=0
while :; do
  n=0
  for x in o e; do
    eval "p=\\$$x z=\\$\${x}z q=\\$\${x}q k=\\$\${x}k d=\\$\${x}d"
    [ $d = 1 ] && continue
    alive $p || { eval "\${x}d=1"; continue; }
    r=-; w=-
    { { read -r v r; read -r v w; } < /proc/$p/io; } 2>/dev/null
    case "$r$w" in *[!0-9]*) r=0 w=0 ;; esac
    if [ -z "$z" ]; then z=$r
    elif [ $w -ge $((z + ${PIPE_BYTES})) ]; then d=1
    elif [ $r != $w ]; then q= k=0
    elif [ -z "$q" ]; then q=$r k=0
    elif [ $r != $q ]; then d=1
    else k=$((k + 1)); [ $k -lt ${RELAY_QUIET_ROUNDS} ] || d=1
    fi
    eval "\${x}z=$z \${x}q=$q \${x}k=$k \${x}d=$d"
    [ $d = 1 ] || n=$((n + 1))
  done
  [ $n = 0 ] && break
  read -t ${RELAY_ROUND_SECONDS} v <&9
done
trap - CHLD
for x in o e; do
  eval "p=\\$$x"
  alive $p || continue
  if [ $x = o ]; then $B cat <&5 >/dev/null 4>&- 5<&- 7<&- 9<&- &
  else $B cat <&7 >/dev/null 4>&- 5<&- 7<&- 9<&- &
  fi
  kill -9 $p
done
wait $o $e
read -t ${LINGER_SECONDS} v <&9
exit "$s"
`;

/**
 * The argv LXD runs for `command` with the environment `env` (see EXEC_SCRIPT); with
 * `relayOutput`, the exec ends when the command does, whatever it left holding its output (see
 * RELAYED_EXEC_SCRIPT).
 */
export function execCommand(
  env: Readonly<Record<string, string>>,
  command: readonly string[],
  relayOutput = false,
): string[] {
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return [
    IN_INSTANCE.busybox,
    'sh',
    '-c',
    relayOutput ? RELAYED_EXEC_SCRIPT : EXEC_SCRIPT,
    'alacarte-exec',
    String(pairs.length),
    ...pairs,
    ...command,
  ];
}
