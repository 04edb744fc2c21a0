import { describe, expect, it } from 'vitest';
import {
  CLONE_NAMESPACE_FLAGS,
  DENIED_SYSCALLS,
  INIT_PID_SYSCALLS,
  seccompProfile,
} from '../../../../src/drivers/crun/seccomp.js';

describe('seccomp profile', () => {
  const profile = seccompProfile('x64');

  it('lists only the native architecture, so foreign-ABI syscalls are killed', () => {
    expect(profile.architectures).toEqual(['SCMP_ARCH_X86_64']);
    expect(seccompProfile('arm64').architectures).toEqual(['SCMP_ARCH_AARCH64']);
    expect(() => seccompProfile('mips')).toThrow(/mips/);
  });

  it('denies mounts, namespaces, kernel loading, bpf, keyrings and ptrace with EPERM', () => {
    const denied = profile.syscalls.filter((r) => !r.args).flatMap((r) => (r.errnoRet === 1 ? r.names : []));
    for (const name of [
      'mount',
      'umount2',
      'kexec_load',
      'bpf',
      'keyctl',
      'ptrace',
      'unshare',
      'setns',
      'init_module',
    ]) {
      expect(denied).toContain(name);
    }
    expect(new Set(DENIED_SYSCALLS).size).toBe(DENIED_SYSCALLS.length);
  });

  it('denies clone with any namespace flag, one masked rule per flag', () => {
    const cloneRules = profile.syscalls.filter((r) => r.names.includes('clone'));
    expect(cloneRules.map((r) => r.args?.[0]?.value)).toEqual([...CLONE_NAMESPACE_FLAGS]);
    for (const r of cloneRules) {
      expect(r.args?.[0]).toMatchObject({ index: 0, op: 'SCMP_CMP_MASKED_EQ' });
      expect(r.args?.[0]?.valueTwo).toBe(r.args?.[0]?.value);
    }
    // CLONE_NEWUSER is among them
    expect(CLONE_NAMESPACE_FLAGS).toContain(0x10000000);
  });

  it('makes clone3 look absent so libc falls back to the filtered clone', () => {
    expect(profile.syscalls.find((r) => r.names.includes('clone3'))).toMatchObject({ errnoRet: 38 });
  });

  it("refuses lowering init's scheduling: pid 1, its process group, any user, compared as 32-bit ints", () => {
    const rules = profile.syscalls.filter((r) => r.args && !r.names.includes('clone'));
    const pidRule = rules.find((r) => r.names.includes('sched_setscheduler'));
    expect(pidRule?.names).toEqual([...INIT_PID_SYSCALLS]);
    expect(pidRule?.args).toEqual([{ index: 0, value: 0xffffffff, valueTwo: 1, op: 'SCMP_CMP_MASKED_EQ' }]);
    const conditions = (name: string) =>
      rules.filter((r) => r.names.includes(name)).map((r) => r.args?.map((a) => [a.index, a.valueTwo]));
    // setpriority(which, who): PRIO_PROCESS 1, PRIO_PGRP 1, PRIO_USER anyone.
    expect(conditions('setpriority')).toEqual([
      [
        [0, 0],
        [1, 1],
      ],
      [
        [0, 1],
        [1, 1],
      ],
      [[0, 2]],
    ]);
    // ioprio_set(which, who): IOPRIO_WHO_PROCESS 1, IOPRIO_WHO_PGRP 1, IOPRIO_WHO_USER anyone.
    expect(conditions('ioprio_set')).toEqual([
      [
        [0, 1],
        [1, 1],
      ],
      [
        [0, 2],
        [1, 1],
      ],
      [[0, 3]],
    ]);
    for (const r of rules) {
      expect(r.errnoRet).toBe(1);
      for (const a of r.args ?? []) expect(a).toMatchObject({ value: 0xffffffff, op: 'SCMP_CMP_MASKED_EQ' });
    }
  });

  it('allows everything else', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(profile.syscalls.flatMap((r) => r.names)).not.toContain('read');
  });
});
