import { describe, expect, it } from 'vitest';
import {
  CLONE_NAMESPACE_FLAGS,
  DENIED_SYSCALLS,
  INIT_PID_SYSCALLS,
  seccompProfile,
} from '../../../../src/drivers/crun/seccomp.js';
import { lxdSeccompPolicy } from '../../../../src/drivers/lxd/lxd-seccomp.js';

describe('LXD seccomp policy (raw.seccomp)', () => {
  const lines = lxdSeccompPolicy().split('\n');

  it('is a v2 deny list for every ABI, force umounts refused as LXD does', () => {
    expect(lines.slice(0, 4)).toEqual(['2', 'denylist', 'reject_force_umount', '[all]']);
    expect(lines.at(-1)).toBe('');
  });

  it("refuses crun's syscalls, namespace flags of clone, and clone3 as absent", () => {
    for (const name of DENIED_SYSCALLS) expect(lines).toContain(`${name} errno 1`);
    for (const flag of CLONE_NAMESPACE_FLAGS)
      expect(lines).toContain(`clone errno 1 [0,${flag},SCMP_CMP_MASKED_EQ,${flag}]`);
    expect(lines).toContain('clone3 errno 38');
  });

  it("refuses changes to init's scheduling: pid 1, process group 1, any user, as 32-bit ints", () => {
    const low32 = (index: number, value: number) => `[${index},${value},SCMP_CMP_MASKED_EQ,4294967295]`;
    for (const name of INIT_PID_SYSCALLS) expect(lines).toContain(`${name} errno 1 ${low32(0, 1)}`);
    // setpriority(which, who): PRIO_PROCESS 1, PRIO_PGRP 1, PRIO_USER anyone.
    expect(lines.filter((l) => l.startsWith('setpriority '))).toEqual([
      `setpriority errno 1 ${low32(0, 0)} ${low32(1, 1)}`,
      `setpriority errno 1 ${low32(0, 1)} ${low32(1, 1)}`,
      `setpriority errno 1 ${low32(0, 2)}`,
    ]);
    // ioprio_set(which, who): IOPRIO_WHO_PROCESS 1, IOPRIO_WHO_PGRP 1, IOPRIO_WHO_USER anyone.
    expect(lines.filter((l) => l.startsWith('ioprio_set '))).toEqual([
      `ioprio_set errno 1 ${low32(0, 1)} ${low32(1, 1)}`,
      `ioprio_set errno 1 ${low32(0, 2)} ${low32(1, 1)}`,
      `ioprio_set errno 1 ${low32(0, 3)}`,
    ]);
  });

  it('holds exactly the rules of the crun profile, one line per syscall name', () => {
    const rules = lines.slice(4, -1);
    expect(rules).toHaveLength(seccompProfile().syscalls.reduce((n, r) => n + r.names.length, 0));
    expect(new Set(rules).size).toBe(rules.length);
  });
});
