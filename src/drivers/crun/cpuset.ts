import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * A lease's CPUs as the sandbox sees them. The CPU quota (cgroup-limits.ts) bounds how much CPU time
 * a sandbox gets, but `nproc` asks sched_getaffinity and lxcfs's /proc/cpuinfo lists the cpuset: a
 * sandbox of ceil(vcpu) CPUs of its own makes both say the lease's count (a 1.5-vcpu lease sees 2
 * CPUs and may use 1.5 of them).
 */

/** Parses a kernel CPU list such as "0-3,8,10-11" into CPU numbers (at most 4096 of them). */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    const m = /^(\d{1,4})(?:-(\d{1,4}))?$/.exec(part);
    if (!m) continue;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let c = from; c <= to && cpus.length < 4096; c++) cpus.push(c);
  }
  return cpus;
}

/** The CPUs sandboxes may be placed on: the root cpuset's, or 0..n-1 where there is none. */
export function hostCpus(mode: 'v1' | 'hybrid' | 'v2', root = '/sys/fs/cgroup'): number[] {
  const file =
    mode === 'v2' ? join(root, 'cpuset.cpus.effective') : join(root, 'cpuset', 'cpuset.effective_cpus');
  try {
    const cpus = parseCpuList(readFileSync(file, 'utf8'));
    if (cpus.length > 0) return cpus;
  } catch {
    // no cpuset controller: fall through
  }
  return Array.from({ length: availableParallelism() }, (_, i) => i);
}

/**
 * ceil(vcpu) of the host's CPUs, starting at position `start` (taken round-robin by the driver, so
 * one-CPU sandboxes spread over the host), as a kernel CPU list; all of them when vcpu asks for more.
 */
export function pickCpus(vcpu: number, cpus: readonly number[], start: number): string {
  const count = Math.min(cpus.length, Math.max(1, Math.ceil(vcpu)));
  const picked: number[] = [];
  for (let i = 0; i < count; i++) picked.push(cpus[(start + i) % cpus.length] as number);
  return picked.sort((a, b) => a - b).join(',');
}

/**
 * True when a cpuset `made` (a kernel CPU list a sandbox was created with) serves a lease of `vcpu`
 * CPUs as pickCpus() would: as many CPUs as it would pick, all of them still in `allowed` (the
 * parent's now: an operator may have narrowed it since). Then the start need not write it again.
 */
export function keepsCpus(made: string | undefined, vcpu: number, allowed: readonly number[]): boolean {
  if (made === undefined) return false;
  const cpus = parseCpuList(made);
  const count = Math.min(allowed.length, Math.max(1, Math.ceil(vcpu)));
  return cpus.length === count && cpus.every((c) => allowed.includes(c));
}

/** The cgroup file that sets a sandbox's CPUs (v1: the cpuset hierarchy's; v2: its cpuset.cpus). */
export function cpusetFile(
  mode: 'v1' | 'hybrid' | 'v2',
  cgroupPath: string,
  root = '/sys/fs/cgroup',
): string {
  return mode === 'v2'
    ? join(root, cgroupPath, 'cpuset.cpus')
    : join(root, 'cpuset', cgroupPath, 'cpuset.cpus');
}

/**
 * The CPUs a sandbox's cpuset may hold: its parent cgroup's (an operator may have narrowed
 * `/alacarte`), else the host's. One file read.
 */
export function parentCpus(
  mode: 'v1' | 'hybrid' | 'v2',
  cgroupPath: string,
  root = '/sys/fs/cgroup',
): number[] {
  const parent = dirname(dirname(cpusetFile(mode, cgroupPath, root)));
  try {
    const cpus = parseCpuList(
      readFileSync(join(parent, mode === 'v2' ? 'cpuset.cpus.effective' : 'cpuset.effective_cpus'), 'utf8'),
    );
    if (cpus.length > 0) return cpus;
  } catch {
    // no such controller there: fall through
  }
  return hostCpus(mode, root);
}

/** Hands out cpusets round-robin over the CPUs given, so that small sandboxes spread out. */
export class CpuPicker {
  private next = 0;

  /** ceil(vcpu) of `cpus` as a kernel CPU list, e.g. "1" or "0,1". */
  pick(vcpu: number, cpus: readonly number[]): string {
    const list = pickCpus(vcpu, cpus, this.next % cpus.length);
    this.next = (this.next + Math.ceil(vcpu)) % cpus.length;
    return list;
  }
}

/** How long a parent's CPU list read by ParentCpus serves (milliseconds). */
const PARENT_CPUS_TTL_MS = 1000;

/**
 * parentCpus() read at most once a second per parent: every start read it (a cgroup file, ~22 µs
 * of the node's thread each), a burst of 100 starts the same file 100 times.
 * An operator narrowing the parent's cpuset is seen within a second; a start in that second may
 * fail to write a CPU the parent no longer has (the start fails and its lease is refunded).
 */
export class ParentCpus {
  private readonly read = new Map<string, { cpus: number[]; at: number }>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** As parentCpus(mode, cgroupPath, root). */
  of(mode: 'v1' | 'hybrid' | 'v2', cgroupPath: string, root = '/sys/fs/cgroup'): number[] {
    const key = `${mode}\0${root}\0${dirname(cgroupPath)}`;
    const now = this.now();
    const cached = this.read.get(key);
    if (cached && now - cached.at < PARENT_CPUS_TTL_MS) return cached.cpus;
    const cpus = parentCpus(mode, cgroupPath, root);
    this.read.set(key, { cpus, at: now });
    return cpus;
  }
}
