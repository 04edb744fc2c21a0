import { IN_SANDBOX } from './oci-spec.js';

/**
 * PID 1 of every sandbox, run by the host's static busybox (so it works whatever the image holds).
 * It ends the sandbox at its deadline on its own: when PID 1 exits, the kernel kills everything
 * else in the pid namespace, so no control-plane process has to be alive for the deadline to hold.
 *
 * The deadline (epoch seconds) is read from a read-only bind of a host directory; the host replaces
 * the file atomically and writes a line into the FIFO init waits on, which cuts the wait short so
 * the new deadline applies at once (SIGUSR1 does too). A missing or unreadable file ends the sandbox
 * (fail closed).
 *
 * After starting the lease's command, init never forks: it waits with `read -t` on a FIFO nobody
 * writes to, instead of running `sleep`. A fork could fail once a tenant's processes fill the pids
 * limit, and in ash a failed fork is fatal. ash reaps orphaned children on SIGCHLD by itself.
 *
 * Sandboxes are made and started before their lease is known (see layer-pool.ts): init waits with
 * a provisional deadline until the lease's /run/alacarte/command.sh appears (see commandFile), then
 * sources it once and starts the command.
 */
export function initScript(): string {
  return `# alacarte sandbox init
R=${IN_SANDBOX.runDir}
D=$R/deadline
exec 3<>$R/wake || exit 0
trap : USR1
started=
while :; do
  if [ -z "$started" ] && [ -f $R/command.sh ]; then
    started=1
    . $R/command.sh
    if [ $# -gt 0 ]; then "$@" </dev/null >/dev/null 2>&1 & fi
  fi
  d=0
  read -r d < $D || exit 0
  r=$((d - EPOCHSECONDS))
  [ "$r" -gt 0 ] || exit 0
  [ "$r" -gt 30 ] && r=30
  read -t $r x <&3
done
`;
}

/** The deadline file init reads: whole epoch seconds, rounded up so a sandbox never ends early. */
export function deadlineFile(deadline: Date): string {
  return `${Math.ceil(deadline.getTime() / 1000)}\n`;
}

/** /run/alacarte/lease.json as API.md describes it. */
export function leaseFile(leaseId: string, deadline: Date): string {
  return `${JSON.stringify({ id: leaseId, expires_at: deadline.toISOString() })}\n`;
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * /run/alacarte/command.sh, sourced by init: exports the lease's environment and sets the command
 * as init's arguments. Every value is single-quoted; names are checked by the driver.
 */
export function commandFile(command: readonly string[], env: Readonly<Record<string, string>>): string {
  const lines = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
  lines.push(`set -- ${command.map(shellQuote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}
