import { parseLeaseInput, sandboxLimitsSchema, sandboxRequestSchema } from '../../core/lease-request.js';
import type { SandboxLimits, SandboxSpec } from '../compute-driver.js';

/**
 * The shared lease-request checks (core/lease-request.ts), applied again here as a driver must not
 * trust its caller: the HTTP layer already refused all of this before any payment.
 */
export function validateSpec(spec: SandboxSpec): void {
  parseLeaseInput(sandboxRequestSchema, spec);
}

export function validateLimits(limits: SandboxLimits): void {
  parseLeaseInput(sandboxLimitsSchema, limits);
}
