import { z } from 'zod';
import { AlacarteError } from '../../core/errors.js';
import { ENV_NAME_PATTERN } from '../../core/lease-request.js';
import type { SandboxLimits } from '../compute-driver.js';

/*
 * What the driver records on each instance (its `user.alacarte.*` config keys) and reads back
 * from LXD: every replica, and a node restarted, learns a lease's owner, deadline, limits, ports,
 * shell, working directory and environment from the instance itself, not from a memory of its own.
 */

const INSTANCE_STATUS = z
  .enum(['Running', 'Stopped', 'Frozen', 'Error', 'Starting', 'Stopping', 'Ready'])
  .or(z.string());

/** The fields of GET /1.0/instances?recursion=1 the driver reads. */
export const instanceSchema = z
  .object({
    name: z.string().max(63),
    status: INSTANCE_STATUS,
    created_at: z.string().optional(),
    config: z.record(z.string(), z.string()),
  })
  .loose();
export type Instance = z.infer<typeof instanceSchema>;

const limitsSchema = z.object({
  vcpu: z.number(),
  memoryMib: z.number(),
  pids: z.number(),
  diskMib: z.number(),
});

/** The instance config keys the driver writes at start() (and setDeadline()) and reads back. */
export const KEY = {
  owner: 'user.alacarte.owner',
  lease: 'user.alacarte.lease',
  deadline: 'user.alacarte.deadline',
  limits: 'user.alacarte.limits',
  ports: 'user.alacarte.ports',
  /** The image's shell (image-config.ts), what attach runs without a command. */
  shell: 'user.alacarte.shell',
  /** The image's working directory: where exec, spawn, attach and the lease's command run. */
  cwd: 'user.alacarte.cwd',
  /** The image's environment and the lease's over it (the lease's wins), for each exec. */
  env: 'user.alacarte.env',
  /** The number of the instance's last deadline move (deadline-seal.ts). */
  move: 'user.alacarte.move',
} as const;

/** The answer to a lease whose instance is not (or no longer) running. */
export const notRunning = (leaseId: string) =>
  new AlacarteError('lease_not_running', `sandbox ${leaseId} is not running`);

/** The limits start() recorded on the instance, or undefined when they are missing or malformed. */
export function limitsOf(i: Instance): SandboxLimits | undefined {
  try {
    return limitsSchema.parse(JSON.parse(i.config[KEY.limits] ?? ''));
  } catch {
    return undefined;
  }
}

/** The lease's environment (start's spec.env), as recorded on its instance. */
export function leaseEnv(i: Instance): Record<string, string> {
  try {
    return z
      .record(z.string().regex(ENV_NAME_PATTERN), z.string())
      .parse(JSON.parse(i.config[KEY.env] ?? '{}'));
  } catch {
    return {};
  }
}

/** The ports record (sandbox port -> URL) start() wrote as `user.alacarte.ports`; {} when malformed. */
export function parsePorts(text: string | undefined): Record<number, string> {
  try {
    const parsed = z
      .record(z.string().regex(/^\d{1,5}$/), z.string().max(64))
      .parse(JSON.parse(text ?? '{}'));
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [Number(k), v]));
  } catch {
    return {};
  }
}
