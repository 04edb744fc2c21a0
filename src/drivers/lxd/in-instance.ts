import { SEAL_SHELL_FUNCTIONS } from './deadline-seal.js';

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
  /**
   * init's own copy of busybox, mode 0711: executable but not readable by init's uid (see
   * instanceInit). Every other program runs the readable bin/busybox: a process of an unreadable
   * program is non-dumpable, and the kill script could no longer read its environment.
   */
  initBusybox: '/run/alacarte/bin/busybox-init',
  /** The FIFO init reads deadline moves from (deadline-seal.ts), held open by init from its start. */
  moves: '/run/alacarte/bin/wait',
  /**
   * The uid and gid init runs as once started: none of the image's usual ids, and not root, so that
   * it cannot read busybox (mode 0711) and the kernel makes it non-dumpable (see instanceInit).
   */
  initUid: 65533,
} as const;

/**
 * PID 1 of every instance (LXC's `lxc.init.cmd`: `busybox env -i ALACARTE_KEY=<key> busybox sh
 * init.sh <deadline>`): it ends the instance at its deadline on its own, so that no control plane has
 * to be alive for the deadline to hold, and its tenant, root in the instance, cannot move that
 * deadline or stop init from enforcing it. When PID 1 exits the container stops, and LXD deletes it
 * (the instance is ephemeral).
 *
 * - The deadline (epoch seconds) starts as its argument, which LXC's config gives and the instance
 *   cannot change. It moves only by lines `<deadline> <move> <tag>` read from bin/wait, a FIFO
 *   init opened at its start: a line counts when its tag is right under the key (the node's, from
 *   LXC's config, deadline-seal.ts) and its move number exceeds every earlier one; anything else a
 *   tenant writes there is ignored. Files a tenant may rewrite (the pushed deadline file) are never
 *   read, and no path is opened after the start, so a FIFO or a slow file put in place cannot hang
 *   it. Each read is bounded (80 bytes, 1 second) and the deadline is checked after each.
 * - As root it brings the loopback up (LXC leaves it down without a NIC, and programs inside talk
 *   over 127.0.0.1), makes its FIFO and its busybox copy when the files were pushed (LXD's file API
 *   makes no FIFOs; the copy is not pushed, to keep the upload small), then becomes uid/gid
 *   IN_INSTANCE.initUid and runs IN_INSTANCE.initBusybox, which that user cannot read: the kernel
 *   then marks the process non-dumpable (would_dump, fs/exec.c), so that /proc/1/mem,
 *   /proc/1/environ (its key) and ptrace stay closed to every process of the instance, which lacks
 *   CAP_SYS_PTRACE (lxd-driver.ts drops it), even one that takes the same uid. The second part of
 *   the script reaches that shell as a here-document (a pipe, written by this shell with no fork):
 *   nothing a tenant could have rewritten by then is read.
 * - Signals from inside cannot end or stop it: the kernel drops signals to a namespace's init that
 *   it does not handle, SIGKILL and SIGSTOP included; it ignores those a shell run with `-c` would
 *   otherwise catch and exit on (SIGINT: `kill -2 1` ended it) and handles only SIGCHLD, which cuts
 *   its wait short so reparented orphans are reaped at once.
 * - It never forks once running: a fork fails once a tenant fills the pids limit, and a failed fork
 *   is fatal in ash.
 */
export function instanceInit(): string {
  return `# alacarte LXD instance init
R=${IN_INSTANCE.runDir}
[ -p ${IN_INSTANCE.moves} ] || $R/bin/busybox mkfifo -m 0600 ${IN_INSTANCE.moves}
exec 3<>${IN_INSTANCE.moves} || exit 0
$R/bin/busybox ip link set lo up
B=${IN_INSTANCE.initBusybox}
[ -e $B ] || { $R/bin/busybox cp $R/bin/busybox $B && $R/bin/busybox chmod 0711 $B; } || exit 0
exec $R/bin/busybox nsenter -S ${IN_INSTANCE.initUid} -G ${IN_INSTANCE.initUid} -F $B sh -s ${IN_INSTANCE.init} "$1" <<'EOF'
${INIT_LOOP}
EOF
exit 0
`;
}

/** The part of init that runs as IN_INSTANCE.initUid, its deadline `$2`. */
const INIT_LOOP = `${SEAL_SHELL_FUNCTIONS}
num() { case $1 in 0|[1-9]|[1-9][0-9]|[1-9][0-9][0-9]*) case $1 in *[!0-9]*) return 1;; esac; [ \${#1} -le 18 ];; *) return 1;; esac; }
k0=\${ALACARTE_KEY%:*}; k1=\${ALACARTE_KEY#*:}; unset ALACARTE_KEY
case \${k0#-}:\${k1#-} in *[!0-9:]*|:*|*:) exit 0;; esac
num "$2" || exit 0
d=$2; n=0
trap "" HUP INT QUIT TERM
trap : CHLD
while [ "$((d - EPOCHSECONDS))" -gt 0 ]; do
  a=; b=; c=; e=
  read -r -t 1 -n 80 a b c e <&3 || continue
  [ -z "$e" ] && num "$a" && num "$b" && [ "$((b > n))" = 1 ] && seal_check "$a" "$b" "$c" && d=$a && n=$b
done
exit 0`;

/**
 * Kills every process whose environment carries `ALACARTE_EXEC=<tag>` (lxd-exec.ts): what an exec
 * started, in whatever session or process group, since LXD signals only the exec'd process itself.
 * Shell built-ins only (no fork), so it works while the tenant holds the pids limit. Rounds until
 * one finds none, since a process not yet killed may fork into the slots the round frees (a fork
 * bomb at its pids limit took more than five rounds on a loaded host, and what survived held the
 * exec's output open); at most 100, then exit 1 (the driver runs it again).
 */
export function killTagScript(): string {
  return `# alacarte: kill an exec's processes
round=0
while [ $round -lt 100 ]; do
  round=$((round + 1))
  n=0
  for p in /proc/[0-9]*; do
    while IFS= read -r -d "" v; do
      case $v in "ALACARTE_EXEC=$1") kill -9 "\${p#/proc/}" && n=1; break;; esac
    done < $p/environ
  done 2>/dev/null
  [ $n = 0 ] && exit 0
done
exit 1
`;
}

/**
 * Moves the deadline inside an instance whose files were pushed: /run/alacarte/deadline (`$1`)
 * and lease.json (`$2`), for the tenant to read, each written beside and renamed over the old one
 * (rename(2) is atomic), so a reader sees the old file or the new one, never a part; then `$3`, a
 * sealed move line (deadline-seal.ts), written twice in one write to init's FIFO. The move last:
 * a move into the past ends the instance, and this script with it, at once.
 * - It first waits (up to about 10 s) until PID 1 runs as IN_INSTANCE.initUid: init opens its FIFO
 *   before it changes uid, so a move right after the start reaches it, and is not written to a
 *   path init has not made yet.
 * - The FIFO is opened read-write, so the open never waits for a reader; a full FIFO (only a
 *   tenant writing to it can fill it) makes the write wait, which the node bounds (lxd-driver.ts).
 * - Twice: a signal that interrupts init's read in the middle of a line (SIGCHLD of an orphan)
 *   loses that line, and the copy then applies; the second of two equal lines is ignored.
 * Shell built-ins and the static busybox only.
 */
export function rewriteScript(): string {
  return `R=${IN_INSTANCE.runDir}
i=0
until [ $i -ge 100 ]; do
  while IFS= read -r l; do case $l in "Uid:"*${IN_INSTANCE.initUid}*) break 2;; esac; done < /proc/1/status
  i=$((i + 1)); $R/bin/busybox sleep 0.1
done
[ $i -lt 100 ] || exit 1
printf %s "$1" > $R/.deadline.tmp && $R/bin/busybox mv -f $R/.deadline.tmp $R/deadline || exit 1
printf %s "$2" > $R/.lease.json.tmp && $R/bin/busybox mv -f $R/.lease.json.tmp $R/lease.json || exit 1
printf '%s\\n%s\\n' "$3" "$3" 1<>${IN_INSTANCE.moves} || exit 1
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
/**
 * The exec's working directory, `$1` (none when empty), entered before anything else, as crun's
 * `exec --cwd` and its exec agent's `cd`: one that cannot be entered fails the command with 126 and
 * the shell's message on its stderr (after the linger, so that LXD reads the message).
 */
const ENTER_CWD = `w=$1; shift
if [ -n "$w" ] && ! cd -- "$w"; then ${IN_INSTANCE.busybox} sleep ${LINGER_SECONDS}; exit 126; fi
`;
const EXEC_SCRIPT = `${ENTER_CWD}${RESOLVE_COMMAND}${IN_INSTANCE.busybox} env -i "$@"; s=$?
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
 * Where RELAYED_EXEC_SCRIPT writes the pid of the command of the exec tagged `<tag>` (lxd-exec.ts),
 * for hangupScript, and removes it once the command has exited: in /dev, the instance's own tmpfs.
 * The tenant may rewrite it, and so SIGHUP a process of its own instance: nothing it could not do.
 */
const COMMAND_PID_PREFIX = '/dev/.alacarte-cmd-';

/**
 * SIGHUPs the command of the exec tagged `$1` (its own process, not what it started), as sshd's
 * hangup: the pid RELAYED_EXEC_SCRIPT wrote, waited for up to a second after a start. Nothing when
 * the command has exited (the file is gone).
 */
export function hangupScript(): string {
  return `f=${COMMAND_PID_PREFIX}$1
for i in 1 2 3 4 5 6 7 8 9 10; do
  if [ -e "$f" ]; then read -r p < "$f" && kill -HUP "$p"; exit 0; fi
  ${IN_INSTANCE.busybox} sleep 0.1
done
`;
}

/**
 * EXEC_SCRIPT for a command whose exec must end when the command does (ComputeDriver.exec and
 * spawn), as crun's does: LXD 5.0 ends an exec only once every holder of its stdout and stderr has closed
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
 * stderr open. Where no FIFO can be made, the command runs as EXEC_SCRIPT runs it. The command's
 * pid goes to a file for hangupScript (COMMAND_PID_PREFIX), written by a busybox shell that then
 * execs the command: the same process, no pid more.
 */
const RELAYED_EXEC_SCRIPT = `${ENTER_CWD}${RESOLVE_COMMAND}B=${IN_INSTANCE.busybox}
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
h=${COMMAND_PID_PREFIX}$ALACARTE_EXEC
(exec $B sh -c '{ echo $$ >"$0"; } 2>/dev/null; exec "$@"' "$h" $B env -i "$@" >&6 2>&8 4>&- 5<&- 6>&- 7<&- 8>&- 9<&-); s=$?
$B rm -f "$h"
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
 * The argv LXD runs for `command` with the environment `env` (see EXEC_SCRIPT), in the working
 * directory `cwd` (ENTER_CWD; the instance's `/` when empty); with `relayOutput`, the exec ends
 * when the command does, whatever it left holding its output (see RELAYED_EXEC_SCRIPT).
 */
export function execCommand(
  env: Readonly<Record<string, string>>,
  command: readonly string[],
  relayOutput = false,
  cwd = '',
): string[] {
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return [
    IN_INSTANCE.busybox,
    'sh',
    '-c',
    relayOutput ? RELAYED_EXEC_SCRIPT : EXEC_SCRIPT,
    'alacarte-exec',
    cwd,
    String(pairs.length),
    ...pairs,
    ...command,
  ];
}
