import { CLONE_NAMESPACE_FLAGS, DENIED_SYSCALLS } from '../crun/seccomp.js';

const EPERM = 1;
const ENOSYS = 38;

/**
 * The seccomp policy of every LXD instance (LXC's v2 format, LXD's `raw.seccomp`, which replaces
 * the policy LXD would generate): the crun sandboxes' deny list (seccomp.ts: mounts, namespaces,
 * kernel modules, keyrings, ptrace, bpf, io_uring...), clone(2) refused when its flags would make
 * a namespace (one masked rule per flag, as rules for one syscall are OR-ed), and clone3(2), whose
 * flags seccomp cannot read, answered ENOSYS so libc falls back to clone. LXD's own `deny_default`
 * entries (kexec_load, open_by_handle_at, *_module) are part of the crun list; umount -f is refused
 * as LXD does by default.
 */
export function lxdSeccompPolicy(): string {
  return [
    '2',
    'denylist',
    'reject_force_umount',
    '[all]',
    ...DENIED_SYSCALLS.map((name) => `${name} errno ${EPERM}`),
    ...CLONE_NAMESPACE_FLAGS.map((flag) => `clone errno ${EPERM} [0,${flag},SCMP_CMP_MASKED_EQ,${flag}]`),
    `clone3 errno ${ENOSYS}`,
    '',
  ].join('\n');
}
