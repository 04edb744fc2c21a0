import { type SeccompRule, seccompProfile } from '../crun/seccomp.js';

/**
 * One rule of crun's profile as lines of LXC's v2 format, one line per syscall name. An argument
 * is `[index,value,op,mask]`, and LXC hands a masked compare to libseccomp as (mask, value): the
 * OCI rule's `value` is the mask and its `valueTwo` the value the masked argument must equal.
 */
function lxcLines(rule: SeccompRule): string[] {
  const args = (rule.args ?? []).map((a) => ` [${a.index},${a.valueTwo},${a.op},${a.value}]`).join('');
  return rule.names.map((name) => `${name} errno ${rule.errnoRet}${args}`);
}

/**
 * The seccomp policy of every LXD instance (LXC's v2 format, LXD's `raw.seccomp`, which replaces
 * the policy LXD would generate): the crun sandboxes' rules (crun/seccomp.ts), translated so that
 * one list serves both drivers: mounts, namespaces, kernel modules, keyrings, ptrace, bpf,
 * io_uring... refused; clone(2) refused when its flags would make a namespace; clone3(2), whose
 * flags seccomp cannot read, answered ENOSYS so libc falls back to clone; and no change to the
 * priority, scheduling, affinity or limits of pid 1 (the instance's init too, in-instance.ts,
 * which keeps the deadline: root inside takes init's uid at will, and a reniced init would starve
 * inside the instance's own CPU allowance while the node is down). The rules sit in LXC's `[all]`
 * section, so the compat ABIs (i386, x32) get them under their own numbers. LXD's own
 * `deny_default` entries (kexec_load, open_by_handle_at, *_module) are part of the crun list;
 * umount -f is refused as LXD does by default.
 *
 * @throws Error on an architecture crun has no profile for (seccomp.ts), as the crun driver does.
 */
export function lxdSeccompPolicy(): string {
  return [
    '2',
    'denylist',
    'reject_force_umount',
    '[all]',
    ...seccompProfile().syscalls.flatMap(lxcLines),
    '',
  ].join('\n');
}
