/**
 * The seccomp profile of every sandbox. Everything is allowed except what a tenant must never do:
 * touch mounts or namespaces, load code into the kernel, reach the kernel's keyrings, trace
 * processes, or use interfaces with a long record of kernel exploits (bpf, io_uring, userfaultfd,
 * perf), or starve the sandbox's init, which keeps its deadline. Only the native architecture is listed, so 32-bit and x32 syscalls are killed outright
 * (libseccomp's bad-arch action) instead of slipping past the deny list under other numbers.
 */
export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ERRNO';
  errnoRet: number;
  args?: { index: number; value: number; valueTwo: number; op: 'SCMP_CMP_MASKED_EQ' }[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ALLOW';
  architectures: string[];
  syscalls: SeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/** Denied with EPERM, so software sees an ordinary "operation not permitted". */
export const DENIED_SYSCALLS: readonly string[] = [
  // mounts and namespaces
  'mount',
  'umount2',
  'pivot_root',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'move_mount',
  'open_tree',
  'mount_setattr',
  'unshare',
  'setns',
  // kernel code and kernel state
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'keyctl',
  'add_key',
  'request_key',
  'reboot',
  'swapon',
  'swapoff',
  'acct',
  'quotactl',
  'syslog',
  'lookup_dcookie',
  'nfsservctl',
  'uselib',
  'sysfs',
  'ustat',
  'vhangup',
  'iopl',
  'ioperm',
  // the host's clock is shared by every tenant
  'settimeofday',
  'clock_settime',
  'clock_adjtime',
  'adjtimex',
  // other processes' memory and file handles
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'kcmp',
  'pidfd_getfd',
  'open_by_handle_at',
  'name_to_handle_at',
  'fanotify_init',
];

/** clone() flags that would create namespaces (CLONE_NEWNS ... CLONE_NEWNET, CLONE_NEWCGROUP). */
export const CLONE_NAMESPACE_FLAGS: readonly number[] = [
  0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
];

/**
 * Syscalls whose first argument is a pid and which a process of init's uid may apply to init
 * without CAP_SYS_NICE or CAP_SYS_RESOURCE: a lower priority or an idle scheduling class (root
 * inside takes init's uid at will, init-script.ts) would starve init inside the sandbox's own CPU
 * quota, so that a busy tenant stretched its deadline while the node is down; a limit could only
 * end init early, refused all the same. Denied for pid 1 (the sandbox's init, init-script.ts) only.
 */
export const INIT_PID_SYSCALLS: readonly string[] = [
  'sched_setscheduler',
  'sched_setparam',
  'sched_setattr',
  'sched_setaffinity',
  'prlimit64',
];

/** setpriority(2) and ioprio_set(2) `which` values: a process, a process group, a user. */
const PRIO_PROCESS = 0;
const PRIO_PGRP = 1;
const PRIO_USER = 2;
const IOPRIO_WHO_PROCESS = 1;
const IOPRIO_WHO_PGRP = 2;
const IOPRIO_WHO_USER = 3;

/**
 * `(arg & 0xffffffff) == value`: the kernel reads these arguments as 32-bit ints, so the upper half
 * of the register must not let a call slip past a 64-bit compare.
 */
const int32Is = (index: number, value: number) => ({
  index,
  value: 0xffffffff,
  valueTwo: value,
  op: 'SCMP_CMP_MASKED_EQ' as const,
});

const denyWhen = (names: string[], ...args: SeccompRule['args'] & object): SeccompRule => ({
  names,
  action: 'SCMP_ACT_ERRNO',
  errnoRet: EPERM,
  args,
});

/**
 * The rules that keep init's scheduling as it was (see INIT_PID_SYSCALLS): each names pid 1, its
 * process group (1: init leads it, and starts the agent and the lease's command in sessions of their
 * own, init-script.ts, so nothing else is in it) or a whole user (init's uid among them; `renice -u`
 * and `ionice` by user are refused too).
 */
function initRules(): SeccompRule[] {
  return [
    denyWhen([...INIT_PID_SYSCALLS], int32Is(0, 1)),
    denyWhen(['setpriority'], int32Is(0, PRIO_PROCESS), int32Is(1, 1)),
    denyWhen(['setpriority'], int32Is(0, PRIO_PGRP), int32Is(1, 1)),
    denyWhen(['setpriority'], int32Is(0, PRIO_USER)),
    denyWhen(['ioprio_set'], int32Is(0, IOPRIO_WHO_PROCESS), int32Is(1, 1)),
    denyWhen(['ioprio_set'], int32Is(0, IOPRIO_WHO_PGRP), int32Is(1, 1)),
    denyWhen(['ioprio_set'], int32Is(0, IOPRIO_WHO_USER)),
  ];
}

const SECCOMP_ARCH: Record<string, string> = { x64: 'SCMP_ARCH_X86_64', arm64: 'SCMP_ARCH_AARCH64' };

export function seccompProfile(nodeArch: string = process.arch): SeccompProfile {
  const arch = SECCOMP_ARCH[nodeArch];
  if (!arch) throw new Error(`no seccomp profile for architecture ${nodeArch}`);
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: [arch],
    syscalls: [
      { names: [...DENIED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // A rule per flag: rules for one syscall are OR-ed, a masked compare can test only one pattern.
      ...CLONE_NAMESPACE_FLAGS.map(
        (flag): SeccompRule => ({
          names: ['clone'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: EPERM,
          args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
        }),
      ),
      // clone3 passes its flags in memory, out of seccomp's reach; ENOSYS makes libc fall back to clone.
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...initRules(),
    ],
  };
}
