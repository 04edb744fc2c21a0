import { setTimeout as sleep } from 'node:timers/promises';
import { AlacarteError } from '../../core/errors.js';
import { CappedBuffer } from '../capped-output.js';
import type { SandboxRef } from '../compute-driver.js';
import { deadlineFile, leaseFile } from '../crun/init-script.js';
import { SEAL_KEY_PATTERN, sealedMove } from './deadline-seal.js';
import type { DriverState } from './driver-state.js';
import { IN_INSTANCE, rewriteScript } from './in-instance.js';
import { deadlineSeconds, SEAL_KEY_IN_RAW_LXC } from './instance-config.js';
import { KEY, notRunning } from './instance-record.js';
import { lxdExec, sendSignal } from './lxd-exec.js';
import { writeDeadline } from './run-dir.js';

/** Tries (100 ms apart) to reach an init that has not opened its FIFO yet (delivery bind). */
const MOVE_ATTEMPTS = 100;
/** How long a deadline move inside an instance (delivery push) may take before it counts as failed. */
const MOVE_TIMEOUT_MS = 30_000;
/** Checks (200 ms apart) that an instance ended after a failed move into the past. */
const PAST_MOVE_CHECKS = 25;

/**
 * Moving a running lease's deadline: a sealed move (deadline-seal.ts) handed to the instance's init,
 * which is what ends the instance without a control plane (in-instance.ts), through its FIFO on the
 * host (delivery `bind`) or a script run inside (delivery `push`); then the deadline and the move's
 * number recorded on the instance, for every replica.
 */
export class DeadlineMoves {
  constructor(private readonly s: DriverState) {}

  /** The driver's setDeadline() (compute-driver.ts): init's move first, then the record on the instance. */
  async setDeadline(sandbox: SandboxRef, deadline: Date): Promise<void> {
    const i = await this.s.running(sandbox.leaseId);
    const key = SEAL_KEY_IN_RAW_LXC.exec(i.config['raw.lxc'] ?? '')?.[1];
    if (!key || !SEAL_KEY_PATTERN.test(key))
      throw new AlacarteError('internal', `sandbox ${sandbox.leaseId} has no deadline seal key`);
    // Above every earlier move, whichever replica made it (each records its number), and above the
    // clock, so a replica that never saw the instance still counts up.
    const last = Number(i.config[KEY.move] ?? 0);
    const move = Math.max(Date.now(), Number.isSafeInteger(last) ? last + 1 : 0);
    const line = sealedMove(key, deadlineSeconds(deadline), move);
    // init's move before the record: it is what holds without a control plane.
    try {
      if (this.s.delivery === 'bind') await this.moveBound(sandbox.leaseId, deadline, line);
      else await this.rewriteInside(sandbox.leaseId, deadline, line);
      await this.s.options.client.call('PATCH', `/1.0/instances/${this.s.instanceName(sandbox.leaseId)}`, {
        config: { [KEY.deadline]: deadline.toISOString(), [KEY.move]: String(move) },
      });
    } catch (e) {
      // A deadline already past ends the instance at once (its init takes the move at once),
      // possibly before the rewrite's exec or the record could finish: that end, which LXD may
      // show a moment later, is the move taking effect.
      if (deadline.getTime() <= Date.now()) {
        for (let i = 0; i < PAST_MOVE_CHECKS; i++) {
          if (!(await this.s.isRunning(sandbox))) return;
          await sleep(200);
        }
      }
      throw e;
    }
  }

  /**
   * writeDeadline with a move, tried again (bounded) while init has not opened its FIFO yet: an
   * instance LXD reports running may not have reached its init's first lines.
   */
  private async moveBound(leaseId: string, deadline: Date, move: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        writeDeadline(this.s.leaseDir(leaseId), leaseId, deadline, move);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || attempt >= MOVE_ATTEMPTS) throw e;
      }
      await sleep(100);
      if (!(await this.s.isRunning({ leaseId }))) throw notRunning(leaseId);
    }
  }

  /**
   * The deadline moved inside the instance (delivery `push`): deadline and lease.json each written
   * beside and renamed over the old one, so the tenant reads a whole file, old or new, then `move`,
   * a sealed line (deadline-seal.ts), to init's FIFO (in-instance.ts, rewriteScript).
   */
  private async rewriteInside(leaseId: string, deadline: Date, move: string): Promise<void> {
    const p = await lxdExec(this.s.options.client, this.s.instanceName(leaseId), {
      command: [
        IN_INSTANCE.busybox,
        'sh',
        '-c',
        rewriteScript(),
        'alacarte-deadline',
        deadlineFile(deadline),
        leaseFile(leaseId, deadline),
        move,
      ],
      env: {},
    });
    p.stdin.end();
    p.stdout?.resume();
    const stderr = new CappedBuffer(1024);
    p.stderr?.on('data', (b: Buffer) => stderr.push(b));
    // Bounded here, not by a program inside: a FIFO a tenant filled would hold the write.
    const timer = setTimeout(() => sendSignal(p.control, 9), MOVE_TIMEOUT_MS);
    const code = await p.exited.finally(() => clearTimeout(timer));
    if (code !== 0) {
      if (!(await this.s.isRunning({ leaseId }))) throw notRunning(leaseId);
      throw new AlacarteError(
        'internal',
        `deadline not rewritten in ${leaseId}: ${stderr.value().toString()}`,
      );
    }
  }
}
