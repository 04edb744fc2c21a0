/**
 * What runs inside every LXD instance, from a read-only host directory mounted at /run/alacarte
 * (bin/ holds the host's static busybox), so that it works whatever the image holds.
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
