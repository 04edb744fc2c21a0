import { IN_SANDBOX } from './oci-spec.js';

/**
 * PID 1 of every sandbox, run by the host's static busybox (so it works whatever the image holds).
 * It ends the sandbox at its deadline on its own: when PID 1 exits, the kernel kills everything
 * else in the pid namespace, so no control-plane process has to be alive for the deadline to hold.
 *
 * The deadline (epoch seconds) is read from a read-only bind of a host directory; the host replaces
 * the file atomically and sends SIGUSR1 to re-read it at once. Without that signal the file is still
 * re-read every 30 s at the latest, and a missing or unreadable file ends the sandbox (fail closed).
 * Waiting on `sleep` also reaps orphans reparented to PID 1, so zombies never pile up.
 */
export function initScript(): string {
  return `# alacarte sandbox init
B=${IN_SANDBOX.busybox}
D=${IN_SANDBOX.runDir}/deadline
s=
trap 'if [ -n "$s" ]; then kill $s 2>/dev/null; fi' USR1
if [ $# -gt 0 ]; then "$@" </dev/null >/dev/null 2>&1 & fi
while :; do
  d=0
  read -r d < $D || exit 0
  r=$((d - EPOCHSECONDS))
  [ "$r" -gt 0 ] || exit 0
  [ "$r" -gt 30 ] && r=30
  $B sleep $r & s=$!
  wait $s
  s=
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
