import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxLimits } from '../compute-driver.js';

/** What the driver keeps on disk per sandbox, so a restarted node finds its sandboxes again. */
export interface SandboxMeta {
  leaseId: string;
  image: string;
  deadline: string;
  limits: SandboxLimits;
  env: Record<string, string>;
  /** The image's environment, working directory and shell (image-config.ts), as at the start. */
  image_env?: Record<string, string>;
  working_dir?: string;
  shell?: string;
  /** sandbox port -> host port */
  ports: Record<string, number>;
  /** The container (made ahead, before the lease was known) and last part of its cgroup path. */
  container: string;
}

/**
 * The meta.json of each lease (`<runtimeDir>/<leaseId>/meta.json`), as this process wrote or first
 * read it: exec, spawn and attach ask for it on every call (a file read and a JSON parse each, on
 * the node's thread), and nothing but this process changes it (setDeadline, which updates both).
 */
export class MetaCache {
  /** lease id -> its meta.json as written or last read (see meta()). */
  private readonly metas = new Map<string, SandboxMeta>();

  constructor(private readonly runtimeDir: string) {}

  /** The lease's meta, remembered or read; throws when its meta.json is missing or unreadable. */
  meta(leaseId: string): SandboxMeta {
    return this.metas.get(leaseId) ?? this.readMeta(leaseId);
  }

  /** meta.json from disk (list(), after a restart), remembered for meta(). */
  readMeta(leaseId: string): SandboxMeta {
    const meta = JSON.parse(readFileSync(join(this.runtimeDir, leaseId, 'meta.json'), 'utf8')) as SandboxMeta;
    this.metas.set(leaseId, meta);
    return meta;
  }

  /** Remembers the meta this process just wrote. */
  set(leaseId: string, meta: SandboxMeta): void {
    this.metas.set(leaseId, meta);
  }

  delete(leaseId: string): void {
    this.metas.delete(leaseId);
  }
}

/** A meta's published ports as the URLs a handle gives: sandbox port -> `http://127.0.0.1:<host port>`. */
export function urls(ports: Record<string, number>): Record<number, string> {
  const out: Record<number, string> = {};
  for (const [inside, hostPort] of Object.entries(ports))
    out[Number(inside)] = `http://127.0.0.1:${hostPort}`;
  return out;
}

/** Replaces `path` whole (a temporary file of a random name beside it, renamed), for files init or a reader may look at any moment. */
export function writeAtomic(path: string, content: string): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}
