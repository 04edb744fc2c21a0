import { AGENT_FILE, AGENT_REQUESTS } from './exec-agent.js';
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
 * limit, and in ash a failed fork is fatal. Orphans are reparented to init: ash reaps them only
 * between commands, so SIGCHLD (trapped) cuts the wait short too; otherwise the zombies of killed
 * or finished background processes would hold the pids limit for up to 30 s.
 *
 * Sandboxes are made and started before their lease is known (see layer-pool.ts): init waits with
 * a provisional deadline until the lease's /run/alacarte/command.sh appears (see commandFile), then
 * starts it once, in a new shell of its own. Init itself never reads the lease's command or
 * environment: its variables (R, D, d, r, x, started, PATH, IFS...) come from this script and from
 * the OCI spec's fixed environment alone, so no request can change how it reads its deadline. The
 * new shell gets neither the wake FIFO (fd 3) nor init's signal handlers.
 *
 * First of all, while nothing of a tenant runs yet (so the fork cannot fail on the pids limit),
 * init starts the exec agent (exec-agent.ts) when the sandbox has its FIFOs.
 */
export function initScript(): string {
  return `# alacarte sandbox init
R=${IN_SANDBOX.runDir}
D=$R/deadline
exec 3<>$R/wake || exit 0
if [ -p $R/${AGENT_REQUESTS} ]; then ${IN_SANDBOX.busybox} sh ${IN_SANDBOX.binDir}/${AGENT_FILE} </dev/null >/dev/null 2>&1 3<&- & fi
trap : USR1 CHLD
started=
while :; do
  if [ -z "$started" ] && [ -f $R/command.sh ]; then
    started=1
    if [ -s $R/command.sh ]; then ${IN_SANDBOX.busybox} sh $R/command.sh </dev/null >/dev/null 2>&1 3<&- & fi
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
 * /run/alacarte/command.sh: the lease's environment and command, run by a shell of the lease's own
 * (init starts `busybox sh command.sh` as a new process and never reads the file itself), which
 * exports the environment and replaces itself with the command. Every value is single-quoted (the
 * driver refuses NUL, the one byte that cannot be), names are checked by the driver, and `exec --`
 * takes a command starting with `-` as a program name. No command: an empty file (nothing to run).
 */
export function commandFile(
  command: readonly string[],
  env: Readonly<Record<string, string>>,
  /** The image's working directory (image-config.ts); the command does not run without it. */
  cwd = '/',
): string {
  if (command.length === 0) return '';
  const lines = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
  if (cwd !== '/') lines.push(`cd -- ${shellQuote(cwd)} || exit 1`);
  lines.push(`exec -- ${command.map(shellQuote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}
