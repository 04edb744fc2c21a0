import type { AuthContext, ParsedKey } from 'ssh2';
import { parseSshPublicKey } from '../core/ssh-keys.js';

/** What authentication asks about leases (leases/ssh-logins.ts). */
export interface LoginDirectory {
  /** The running lease named by an SSH user name, with its public keys; undefined otherwise. */
  lease(user: string): Promise<{ leaseId: string; keys: string[] } | undefined>;
  /** Whether `password` is the running lease's bearer credential (constant-time compare). */
  passwordMatches(user: string, password: string): Promise<boolean>;
  /**
   * Whether the lease's sandbox is another replica's (crun replicas): the login is granted, and
   * its sessions say where the lease runs instead of running anything. Absent: never.
   */
  elsewhere?(leaseId: string): Promise<boolean>;
}

/** The methods offered: the lease's keys, or its bearer credential as password (API.md, SSH). */
const METHODS: Array<'publickey' | 'password'> = ['publickey', 'password'];

/**
 * Decides one authentication request (RFC 4252) for user = lease id: `publickey` with one of the
 * lease's `ssh_keys`, signature verified as ssh2's documentation shows (a query without a
 * signature is answered "this key would do" only for a key of the lease), or `password` equal to
 * the lease's bearer credential. Unknown, ended and expired leases, wrong keys and wrong passwords
 * are all the same plain refusal with the same methods left, so an attempt learns nothing.
 * Answers the lease id once authenticated, undefined otherwise (the context is answered either
 * way); `onLogin` hears of the lease (and whether its sandbox is another replica's) just before
 * the acceptance goes out (ssh2 is ready at once) and may still refuse it (false), e.g. when the
 * lease holds its most connections already.
 */
export async function authenticate(
  ctx: AuthContext,
  logins: LoginDirectory,
  onLogin: (leaseId: string, elsewhere: boolean) => boolean,
): Promise<string | undefined> {
  const elsewhere = async (leaseId: string) => (await logins.elsewhere?.(leaseId)) ?? false;
  if (ctx.method === 'password') {
    const ok = await logins.passwordMatches(ctx.username, ctx.password);
    if (!ok || !onLogin(ctx.username, await elsewhere(ctx.username))) return refuse(ctx);
    ctx.accept();
    return ctx.username;
  }
  if (ctx.method === 'publickey') {
    const lease = await logins.lease(ctx.username);
    const key = lease && matchingKey(lease.keys, ctx.key.algo, ctx.key.data);
    if (!lease || !key) return refuse(ctx);
    if (!ctx.signature || !ctx.blob) {
      // A query: "would this key do?" The real attempt, signed, comes next.
      ctx.accept();
      return undefined;
    }
    if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return refuse(ctx);
    if (!onLogin(lease.leaseId, await elsewhere(lease.leaseId))) return refuse(ctx);
    ctx.accept();
    return lease.leaseId;
  }
  return refuse(ctx);
}

function refuse(ctx: AuthContext): undefined {
  ctx.reject(METHODS);
  return undefined;
}

function matchingKey(lines: readonly string[], algo: string, data: Buffer): ParsedKey | undefined {
  for (const line of lines) {
    const parsed = parseSshPublicKey(line);
    if (parsed.ok && parsed.key.type === algo && parsed.key.getPublicSSH().equals(data)) return parsed.key;
  }
  return undefined;
}
