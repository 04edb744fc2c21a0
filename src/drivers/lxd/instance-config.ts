import type { SandboxLimits, SandboxSpec } from '../compute-driver.js';
import type { ImageConfig } from '../crun/image-config.js';
import { newSealKey } from './deadline-seal.js';
import { IN_INSTANCE } from './in-instance.js';
import { KEY } from './instance-record.js';
import { lxdSeccompPolicy } from './lxd-seccomp.js';

/*
 * The config of a lease's instance, as start() creates it: its limits, its isolation (seccomp,
 * idmap, capabilities, read-only cgroups), the init that ends it at its deadline with the seal key
 * of its deadline moves, and the driver's records (instance-record.ts).
 */

/** Where start() puts the seal key in `raw.lxc` (the instance cannot read it; devlxd shows only user.*). */
export const SEAL_KEY_IN_RAW_LXC = /ALACARTE_KEY=(-?[0-9]{1,19}:-?[0-9]{1,19}) /;

/**
 * Capabilities no process of an instance has (LXC's bounding set): CAP_SYS_ADMIN (mounts,
 * namespaces) and the other host-facing ones; CAP_SYS_PTRACE, without which no process of the
 * instance can read or write the memory of its non-dumpable init (in-instance.ts), whatever uid it
 * takes; CAP_SYS_BOOT, so that reboot(2) cannot restart the instance (seccomp refuses it too).
 */
const DROPPED_CAPABILITIES = 'sys_admin sys_module sys_rawio sys_time sys_ptrace sys_boot';

/** A deadline as init counts it: epoch seconds, rounded up (crun's deadline file does the same). */
export function deadlineSeconds(deadline: Date): number {
  return Math.max(0, Math.ceil(deadline.getTime() / 1000));
}

/**
 * The instance config (LXD `config` keys) of a lease of `owner`'s: `ports` are the URLs its start
 * published (sandbox port -> URL), recorded for list() and other replicas. Each call makes a new
 * seal key.
 */
export function instanceConfig(
  owner: string,
  spec: SandboxSpec,
  limits: SandboxLimits,
  deadline: Date,
  ports: Record<number, string>,
  /** What the image says about how to run it (image-config.ts): its environment, working directory, shell. */
  image: Pick<ImageConfig, 'env' | 'working_dir' | 'shell'>,
): Record<string, string> {
  const cpus = Math.max(1, Math.ceil(limits.vcpu));
  const config: Record<string, string> = {
    [KEY.owner]: owner,
    [KEY.lease]: spec.leaseId,
    [KEY.deadline]: deadline.toISOString(),
    [KEY.limits]: JSON.stringify({
      vcpu: limits.vcpu,
      memoryMib: limits.memoryMib,
      pids: limits.pids,
      diskMib: limits.diskMib,
    }),
    [KEY.ports]: JSON.stringify(ports),
    'limits.cpu': String(cpus),
    // CPU time per period: 0.5 vCPU = 500 ms each second.
    'limits.cpu.allowance': `${Math.max(10, Math.round(limits.vcpu * 1000))}ms/1000ms`,
    'limits.memory': `${limits.memoryMib}MiB`,
    'limits.memory.enforce': 'hard',
    'limits.memory.swap': 'false',
    'limits.processes': String(limits.pids),
    'security.nesting': 'false',
    // crun's seccomp profile: its deny list, no new namespaces from inside (unshare(2), setns(2),
    // clone(2) with namespace flags) and no lower priority for init (lxd-seccomp.ts).
    'raw.seccomp': lxdSeccompPolicy(),
    'security.privileged': 'false',
    // Each instance its own range of host uids and gids: root of one is nobody in another.
    'security.idmap.isolated': 'true',
    'boot.autostart': 'false',
    // init with an empty environment but for the seal key of its deadline moves, and the
    // deadline as its argument (in-instance.ts): no lease variable can change how it runs, and
    // the instance cannot read either. A sandbox, not a system to administer: without
    // DROPPED_CAPABILITIES, for init and every exec alike.
    'raw.lxc': [
      `lxc.init.cmd = ${IN_INSTANCE.busybox} env -i ALACARTE_KEY=${newSealKey()} ${IN_INSTANCE.busybox} sh ${IN_INSTANCE.init} ${deadlineSeconds(deadline)}`,
      `lxc.cap.drop = ${DROPPED_CAPABILITIES}`,
      // The instance's cgroups read-only (LXD mounts its own one writable): root inside could
      // otherwise move init into a cgroup of its own and freeze it, or starve it of CPU. Its
      // programs still read their limits there. \`force\`: mounted by LXC whatever the
      // capabilities, never left to init.
      'lxc.mount.auto =',
      'lxc.mount.auto = proc:rw sys:rw cgroup:ro:force',
    ].join('\n'),
  };
  // Kept as data and handed to each exec, not as LXD's `environment.*` keys: LXC applies those
  // to its own start too, where names such as PATH or IFS could break it. The image's first, the
  // lease's over it (docker run semantics, as the crun driver).
  config[KEY.env] = JSON.stringify({ ...image.env, ...spec.env });
  config[KEY.cwd] = image.working_dir;
  config[KEY.shell] = image.shell;
  return config;
}
