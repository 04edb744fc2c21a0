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

/**
 * How long (in rounds of RELAY_ROUND_SECONDS) a relay may sit idle on an empty pipe after the command
 * exited before the rest of that pipe is left to a drain: 5 x 0.02 s, the 100 ms crun's exec waits
 * for its pipes to end (crun/exec.ts).
 */
const RELAY_QUIET_ROUNDS = 5;
const RELAY_ROUND_SECONDS = '0.02';

/**
 * EXEC_SCRIPT for a command whose exec must end when the command does (ComputeDriver.exec), like
 * crun's: LXD 5.0 ends an exec only once every holder of its stdout and stderr has closed them, and
 * a background job (`server &`) inherits them. Here the command writes to two pipes of this shell's
 * own instead (FIFOs made in /dev, the container's own tmpfs, and removed once open), which `dd`
 * relays to LXD's pipes, so only this shell and the relays hold LXD's. Once the command has exited,
 * a relay that reaches end-of-file (nothing was left behind) has relayed everything; one whose pipe
 * a background job still holds has relayed everything the command wrote once it has read as much as
 * it wrote (/proc/<pid>/io rchar = wchar: not blocked handing a chunk to LXD, however slow the
 * reader) with nothing new read for RELAY_QUIET_ROUNDS. Those counters start at zero only without
 * an exec (an exec counts the binary it reads): hence busybox's own `dd` applet, which its shell
 * runs in the forked child; a busybox that would exec it instead never looks idle, and the exec
 * then ends once the background job closes its output, as before. A settled relay is replaced by a `cat` into
 * /dev/null, started before the relay is killed so the pipe never lacks a reader: the background
 * job keeps writing without meeting SIGPIPE or a full pipe, as with crun's drain (output-drain.ts),
 * until it closes its output. Everything here carries the exec's tag (kill-tag.sh ends it on a
 * timeout). Fd 9 is a FIFO nobody writes to: `read -t` on it waits without a fork, and SIGCHLD
 * (trapped) cuts that wait short when a relay ends. Where no FIFO can be made, the command runs as
 * EXEC_SCRIPT runs it.
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
$D bs=65536 <&5 2>/dev/null 5<&- 6>&- 7<&- 8>&- 9<&- &
o=$!
$D bs=65536 <&7 >&2 2>/dev/null 5<&- 6>&- 7<&- 8>&- 9<&- &
e=$!
exec 4>&2 2>/dev/null
(exec $B env -i "$@" >&6 2>&8 4>&- 5<&- 6>&- 7<&- 8>&- 9<&-); s=$?
exec 6>&- 8>&-
alive() { { read -r x x t u x < /proc/$1/stat; } 2>/dev/null && [ "$u" = $$ ] && [ "$t" != Z ]; }
trap : CHLD
q=; k=0
while :; do
  a=; b=0
  for p in $o $e; do
    alive $p || continue
    r=-; w=-
    { { read -r x r; read -r x w; } < /proc/$p/io; } 2>/dev/null
    [ "$r" = "$w" ] || b=1
    a="$a $p:$r"
  done
  [ -n "$a" ] || break
  if [ $b = 1 ] || [ "$a" != "$q" ]; then q=$a; k=0; else k=$((k + 1)); [ $k -lt ${RELAY_QUIET_ROUNDS} ] || break; fi
  read -t ${RELAY_ROUND_SECONDS} x <&9
done
trap - CHLD
for p in $o $e; do
  alive $p || continue
  if [ $p = $o ]; then $B cat <&5 >/dev/null 4>&- 5<&- 7<&- 9<&- &
  else $B cat <&7 >/dev/null 4>&- 5<&- 7<&- 9<&- &
  fi
  kill -9 $p
done
wait $o $e
read -t ${LINGER_SECONDS} x <&9
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
