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
 * deadline (epoch seconds) is read again every second from the read-only mount the host rewrites
 * (setDeadline), so a moved deadline applies within a second; a missing file ends the instance
 * (fail closed). It never forks: it waits with `read -t` on a FIFO nobody writes to, since a fork
 * fails once a tenant fills the pids limit and a failed fork is fatal in ash. SIGCHLD cuts the wait
 * short so reparented orphans are reaped at once. Without a NIC, LXC leaves the instance's loopback
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

/**
 * An attach's command, run under a small shell that keeps the terminal open half a second after
 * the command ends, then exits with its status. LXD stops reading the terminal once the process it
 * started has exited, so what a shell wrote just before `exit` was sometimes lost (1 in 15 here);
 * while this shell still holds the terminal, LXD reads everything out first.
 */
export function attachCommand(command: readonly string[]): string[] {
  const b = IN_INSTANCE.busybox;
  return [b, 'sh', '-c', `"$@"; s=$?; ${b} sleep 0.5; exit $s`, 'alacarte-attach', ...command];
}
