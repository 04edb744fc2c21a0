import { describe, expect, it } from 'vitest';
import { CAPABILITIES, cpuBandwidth, IN_SANDBOX, ociSpec } from '../../../../src/drivers/crun/oci-spec.js';

const input = {
  hostname: 'sandbox',
  rootfs: '/srv/rt/lse_a/rootfs',
  runDir: '/srv/rt/lse_a/run',
  libDir: '/srv/rt/.lib',
  limits: { vcpu: 0.5, memoryMib: 256, pids: 64, diskMib: 512 },
  idBase: 1_000_000,
  idCount: 65_536,
  cgroupsPath: '/alacarte/x/lse_a',
  swapAccounting: false,
  arch: 'x64',
};

describe('OCI spec', () => {
  const spec = ociSpec(input);

  it('runs the init script as PID 1 with a fixed environment and no arguments of the lease', () => {
    expect(spec.process.args).toEqual([IN_SANDBOX.busybox, 'sh', IN_SANDBOX.init]);
    expect(spec.process.env).toEqual([expect.stringMatching(/^PATH=\//), 'HOME=/root']);
  });

  it('maps root inside to the unprivileged id range', () => {
    expect(spec.process.user).toEqual({ uid: 0, gid: 0 });
    expect(spec.linux.uidMappings).toEqual([{ containerID: 0, hostID: 1_000_000, size: 65_536 }]);
    expect(spec.linux.gidMappings).toEqual([{ containerID: 0, hostID: 1_000_000, size: 65_536 }]);
  });

  it('creates every namespace, the network one included', () => {
    expect(spec.linux.namespaces.map((n) => n.type).sort()).toEqual(
      ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts'].sort(),
    );
  });

  it('applies memory, cpu and pids limits', () => {
    expect(spec.linux.resources.memory).toEqual({ limit: 256 * 1024 * 1024 });
    expect(ociSpec({ ...input, swapAccounting: true }).linux.resources.memory.swap).toBe(256 * 1024 * 1024);
    expect(spec.linux.resources.cpu).toEqual({ quota: 50_000, period: 100_000 });
    expect(spec.linux.resources.pids).toEqual({ limit: 64 });
    expect(spec.linux.cgroupsPath).toBe('/alacarte/x/lse_a');
  });

  it('gives every sandbox at least 10 ms of CPU at once: longer periods under 0.1 vCPU, up to 1 s', () => {
    expect(cpuBandwidth(2)).toEqual({ quota: 200_000, period: 100_000 });
    expect(cpuBandwidth(0.1)).toEqual({ quota: 10_000, period: 100_000 });
    expect(cpuBandwidth(0.05)).toEqual({ quota: 10_000, period: 200_000 });
    expect(cpuBandwidth(0.01)).toEqual({ quota: 10_000, period: 1_000_000 });
    // Under 0.01 vCPU the period is the kernel's longest; the quota keeps the kernel's floor.
    expect(cpuBandwidth(0.005)).toEqual({ quota: 5000, period: 1_000_000 });
    expect(cpuBandwidth(0.0001)).toEqual({ quota: 1000, period: 1_000_000 });
    expect(ociSpec({ ...input, limits: { ...input.limits, vcpu: 0.01 } }).linux.resources.cpu).toEqual({
      quota: 10_000,
      period: 1_000_000,
    });
  });

  it('drops privileges: no new privileges, a small capability set, seccomp', () => {
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.process.capabilities.bounding).toEqual([...CAPABILITIES]);
    expect(spec.process.capabilities.ambient).toEqual([]);
    for (const dangerous of [
      'CAP_SYS_ADMIN',
      'CAP_NET_ADMIN',
      'CAP_NET_RAW',
      'CAP_SYS_PTRACE',
      'CAP_MKNOD',
    ]) {
      expect(spec.process.capabilities.bounding).not.toContain(dangerous);
    }
    expect(spec.linux.seccomp.syscalls.length).toBeGreaterThan(0);
  });

  it('shows the lease files and the init read-only', () => {
    const binds = spec.mounts.filter((m) => m.type === 'bind');
    expect(binds).toEqual([
      expect.objectContaining({ destination: '/run/alacarte', source: input.runDir }),
      expect.objectContaining({ destination: '/run/alacarte/bin', source: input.libDir }),
    ]);
    for (const b of binds) expect(b.options).toContain('ro');
    expect(spec.mounts.find((m) => m.destination === '/sys')?.options).toContain('ro');
  });

  it('only allows the harmless devices', () => {
    const devices = spec.linux.resources.devices;
    expect(devices[0]).toEqual({ allow: false, access: 'rwm' });
    const allowed = devices.filter((d) => d.allow).map((d) => `${d.major}:${d.minor ?? '*'}`);
    expect(allowed).toEqual(['1:3', '1:5', '1:7', '1:8', '1:9', '5:0', '5:2', '136:*']);
  });

  it('masks the kernel files tenants must not read', () => {
    expect(spec.linux.maskedPaths).toContain('/proc/kcore');
    // Not /proc/1/mem: masked, it opened (as /dev/null); init's own non-dumpability closes it.
    expect(spec.linux.maskedPaths).not.toContain('/proc/1/mem');
    expect(spec.linux.readonlyPaths).not.toContain('/proc/1/mem');
    expect(spec.process.capabilities.bounding).not.toContain('CAP_SYS_PTRACE');
    expect(spec.linux.readonlyPaths).toContain('/proc/sysrq-trigger');
  });
});
