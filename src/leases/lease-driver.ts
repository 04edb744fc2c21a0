import type { Offer } from '../core/offers.js';

/** What the lease service needs of a compute driver (the ComputeDriver port satisfies it). */
export interface LeaseDriver {
  /** How many more sandboxes of each offer fit right now. */
  capacity(offers: readonly Offer[]): Map<string, number>;
  start(
    spec: {
      leaseId: string;
      image: string;
      command?: string[];
      env?: Record<string, string>;
      ports: number[];
    },
    limits: { vcpu: number; memoryMib: number; pids: number; diskMib: number },
    deadline: Date,
  ): Promise<{ ports: Record<string, string> }>;
  exec(
    leaseId: string,
    request: { command: string[]; stdin?: string; timeoutMs: number },
  ): Promise<{ exitCode: number; stdout: string; stderr: string; truncated: boolean }>;
  setDeadline(leaseId: string, deadline: Date): Promise<void>;
  stop(leaseId: string): Promise<void>;
  list(): Promise<Array<{ leaseId: string; deadline: Date }>>;
}
