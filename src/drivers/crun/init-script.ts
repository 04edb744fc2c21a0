import { AGENT_FILE, AGENT_REQUESTS, NATIVE_AGENT_FILE, NATIVE_REQUESTS } from './exec-agent.js';
import { IN_SANDBOX, INIT_UID } from './oci-spec.js';
import { PROGRAM_LOOKUP, PROGRAM_LOOKUP_VARS } from './program-lookup.js';

/** The native init's program in the host's library directory (built from native/sandbox-init.c). */
export const NATIVE_INIT_FILE = 'sandbox-init';
/**
 * The name (comm) the native init gives itself once it runs as INIT_UID, non-dumpable: what the
 * host waits for before it hands a sandbox out (init-process.ts).
 */
export const NATIVE_INIT_NAME = 'alacarte-init';

/** The FIFO (in the run directory) whose lines wake init to re-read its deadline. */
export const WAKE_FIFO = 'wake';
/** The FIFO (in the run directory) whose lines wake init's starter to look for command.sh. */
export const START_FIFO = 'start';

export { INIT_UID } from './oci-spec.js';

/**
 * Longest init waits before it reads its deadline file again, woken or not (so a deadline written
 * further ahead than this holds without a wake-up).
 */
export const INIT_RECHECK_SECONDS = 30;

/**
 * PID 1 of every sandbox whose host has no build of the native init (native/sandbox-init.c, which
 * does the same in one program start instead of seven, and is what sandboxes run where it is
 * built; its comment says where the two differ), run by the host's static busybox (so it works
 * whatever the image holds).
 * It ends the sandbox at its deadline on its own: when PID 1 exits, the kernel kills everything
 * else in the pid namespace, so no control-plane process has to be alive for the deadline to hold.
 *
 * The deadline (epoch seconds) is read from a read-only bind of a host directory; the host replaces
 * the file atomically and writes a line into the FIFO init waits on (WAKE_FIFO), which cuts the wait
 * short so the new deadline applies at once (SIGUSR1 does too). A missing or unreadable file ends
 * the sandbox (fail closed).
 *
 * Root inside (the tenant) must not reach init: its memory holds the loop that keeps the deadline.
 * So init runs in two stages (the design of the LXD driver's init, lxd/in-instance.ts):
 * - As root, while nothing of a tenant runs yet (so no fork can fail on the pids limit, and nothing
 *   can race it), it opens its wake FIFO, starts the exec agent (exec-agent.ts) when the sandbox
 *   has its FIFOs, and starts the starter, a child that waits (on START_FIFO, woken by the host
 *   with the lease's files) for the lease's /run/alacarte/command.sh and then, still root, replaces
 *   itself with `busybox sh command.sh`, once. Sandboxes are made and started before their lease
 *   is known (see layer-pool.ts), which is why the start of the command waits in a process of its
 *   own. Agent and starter run in sessions of their own (setsid), so that init is alone in its
 *   process group, which seccomp.ts then keeps others from renicing.
 * - Then it becomes uid/gid INIT_UID with no capabilities (busybox nsenter -S/-G, no fork) and
 *   runs the deadline loop from IN_SANDBOX.initBusybox, a copy of busybox that this uid may execute
 *   but not read: the kernel marks such a process non-dumpable (would_dump, fs/exec.c), and since
 *   the copy's owner is mapped in the sandbox's user namespace, reaching it then takes
 *   CAP_SYS_PTRACE in that namespace. Root inside lacks it (oci-spec.ts), and is another uid
 *   besides, so /proc/1/mem, /proc/1/environ, /proc/1/fd and ptrace are closed to every process of
 *   the tenant, whatever uid it takes; `crun exec`, which joins the namespace with all of its
 *   capabilities before it drops them, still joins init's namespaces. The readable busybox could not
 *   do this (root inside may read it, so init stayed dumpable), and an unreadable copy owned by the
 *   host's root moves init's memory out of the sandbox's namespace altogether, which broke `crun
 *   exec`. A host-side watchdog instead (a timer outside the sandbox) would need a process per
 *   sandbox surviving the node, which this driver has none of by design (README.md): PID 1 ending
 *   the namespace holds with the node killed -9, and now nothing inside can touch it.
 *   The loop reaches that shell as a here-document (a pipe the shell writes itself, no fork) and
 *   reads only the read-only deadline file after that.
 * - Signals from inside cannot end or stop it: the kernel drops signals to a namespace's init that
 *   it does not handle, SIGKILL and SIGSTOP included; the loop ignores HUP, INT, QUIT and TERM,
 *   which a shell might otherwise act on, and handles only USR1 and CHLD, which cut its wait short.
 *   A tenant that takes uid INIT_UID could lower init's priority or scheduling class, starving it
 *   within the sandbox's CPU quota: seccomp.ts refuses those calls on pid 1 (and its process group,
 *   and by user). What else that uid may do to init (raise its OOM score) ends the sandbox early,
 *   never keeps it past its deadline.
 *
 * After the start, init never forks: it waits with `read -t` on its FIFO, which nobody but the
 * host writes to in earnest, instead of running `sleep`. A fork could fail once a tenant's
 * processes fill the pids limit, and in ash a failed fork is fatal. Orphans are reparented to
 * init: ash reaps them only between commands, so SIGCHLD (trapped) cuts the wait short too;
 * otherwise the zombies of killed or finished background processes would hold the pids limit for
 * up to 30 s.
 *
 * Init itself never reads the lease's command or environment: its variables (D, d, r, x, PATH,
 * IFS...) come from this script and from the OCI spec's fixed environment alone, so no request can
 * change how it reads its deadline. The command's shell gets neither init's FIFOs nor its signal
 * handlers.
 */
export function initScript(): string {
  const R = IN_SANDBOX.runDir;
  const B = IN_SANDBOX.busybox;
  return `# alacarte sandbox init (init-script.ts)
exec 3<>${R}/${WAKE_FIFO} || exit 0
if [ -p ${R}/${NATIVE_REQUESTS} ] && [ -x ${IN_SANDBOX.binDir}/${NATIVE_AGENT_FILE} ]; then ${B} setsid ${IN_SANDBOX.binDir}/${NATIVE_AGENT_FILE} ${R} </dev/null >/dev/null 2>&1 3<&- &
elif [ -p ${R}/${AGENT_REQUESTS} ]; then ${B} setsid ${B} sh ${IN_SANDBOX.binDir}/${AGENT_FILE} </dev/null >/dev/null 2>&1 3<&- & fi
${B} setsid ${B} sh -c '${STARTER}' </dev/null >/dev/null 2>&1 3<&- &
exec ${B} nsenter -S ${INIT_UID} -G ${INIT_UID} -F ${IN_SANDBOX.initBusybox} sh -s ${IN_SANDBOX.init} <<'EOF'
${DEADLINE_LOOP}
EOF
exit 0
`;
}

/**
 * init's starter (see initScript): waits for the lease's command.sh, then becomes its shell. Given
 * to `sh -c` in single quotes, so it holds none.
 */
const STARTER = `exec 4<>${IN_SANDBOX.runDir}/${START_FIFO} || exit 0
while [ ! -f ${IN_SANDBOX.runDir}/command.sh ]; do read -t 30 x <&4; done
exec 4<&-
[ -s ${IN_SANDBOX.runDir}/command.sh ] && exec ${IN_SANDBOX.busybox} sh ${IN_SANDBOX.runDir}/command.sh`;

/** The part of init that runs as INIT_UID from the unreadable busybox: keeps the deadline. */
const DEADLINE_LOOP = `D=${IN_SANDBOX.runDir}/deadline
trap '' HUP INT QUIT TERM
trap : USR1 CHLD
while :; do
  d=0
  read -r d < $D || exit 0
  r=$((d - EPOCHSECONDS))
  [ "$r" -gt 0 ] || exit 0
  [ "$r" -gt ${INIT_RECHECK_SECONDS} ] && r=${INIT_RECHECK_SECONDS}
  read -t $r x <&3
done`;

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
 * (init starts `busybox sh command.sh` as a new process and never reads the file itself). It goes to
 * the working directory, looks the program up as an ordinary exec does (program-lookup.ts: in the
 * environment's PATH, else the shell's; never a busybox applet or a shell builtin of that name; 127
 * or 126 when it cannot run), drops the SHLVL, PWD and OLDPWD the shell set, exports the environment
 * and replaces itself with the program, `argv[0]` as given: the command runs with exactly its own
 * environment and command line, as under `docker run`. Every value is single-quoted (the driver
 * refuses NUL, the one byte that cannot be) and names are checked by the driver. No command: an
 * empty file (nothing to run).
 */
export function commandFile(
  command: readonly string[],
  env: Readonly<Record<string, string>>,
  /** The image's working directory (image-config.ts); the command does not run without it. */
  cwd = '/',
): string {
  const [program, ...args] = command;
  if (program === undefined) return '';
  const lines = ['set -f'];
  if (cwd !== '/') lines.push(`cd -- ${shellQuote(cwd)} || exit 1`);
  // Without a PATH of its own, the command keeps the shell's (init's environment's).
  const path = env.PATH === undefined ? '$PATH' : shellQuote(env.PATH);
  lines.push(`_alacarte_c=${shellQuote(program)} _alacarte_p=${path}`, PROGRAM_LOOKUP);
  lines.push('set -- "$_alacarte_f"', `unset SHLVL PWD OLDPWD ${PROGRAM_LOOKUP_VARS}`);
  lines.push(...Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`));
  lines.push(`exec -a ${[shellQuote(program), '--', '"$1"', ...args.map(shellQuote)].join(' ')}`);
  return `${lines.join('\n')}\n`;
}
