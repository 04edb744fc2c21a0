import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fchownSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DriverLogger } from './crun-options.js';
import { runProcess } from './run-process.js';

/**
 * Egress for a sandbox (src/drivers/crun/README.md, "Egress"): pasta (Debian's passt) attached to the
 * sandbox's network and user namespaces, running as a host uid of its own, and host nftables rules
 * on that uid. Everything a tenant sends leaves the host through pasta's own sockets, so the rules
 * that refuse the host, private ranges and port 25, and the bandwidth cap, sit where root inside
 * the sandbox cannot reach them.
 */

/** What the sandbox sees: its address, its gateway, and the DNS forwarder (pasta's --dns-forward). */
export const EGRESS_ADDRESSES = {
  address: '10.0.2.15',
  prefix: 24,
  gateway: '10.0.2.2',
  dnsForwarder: '10.0.2.3',
} as const;

/** Destinations no egress sandbox may reach besides every address of the host itself. */
export const REFUSED_IPV4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/3',
] as const;

/** Pasta runs IPv4 only (-4); these are refused too in case a socket of its uid tries IPv6. */
export const REFUSED_IPV6 = ['::/127', '::ffff:0:0/96', 'fc00::/7', 'fe80::/10', 'ff00::/8'] as const;

/** Host uids for the user-mode networks, one per egress sandbox. */
export const DEFAULT_EGRESS_UID_BASE = 1_200_000;
export const EGRESS_UID_COUNT = 65_536;

/** Where uids are claimed (one file per uid in use, naming its driver instance and sandbox). */
const UID_CLAIMS = '/run/alacarte-egress-uids';

export interface EgressOptions {
  /** The driver instance: names the nftables table, so concurrent drivers never share rules. */
  instance: string;
  /** The resolver sandboxes use (IPv4); default: the host's, through pasta's DNS forwarder. */
  dns?: string;
  /** First host uid for user-mode networks; EGRESS_UID_COUNT follow. Must not overlap sandbox ids. */
  uidBase?: number;
  logger: DriverLogger;
}

/** Kept in the sandbox's directory, so that stop() and a restarted node find the network again. */
interface EgressRecord {
  uid: number;
  pid: number;
}

/** A sandbox as the egress code needs it: its directory, container name and init's host pid. */
export interface EgressTarget {
  dir: string;
  name: string;
  initPid: number;
  bandwidthMbit: number;
  /** cgroup.procs files of the sandbox, so pasta's CPU time is charged to the lease. */
  procsFiles: string[];
}

export class EgressNetwork {
  /** Why egress cannot work on this host (a missing program), or undefined when it can. */
  readonly unavailable: string | undefined;
  readonly table: string;
  private readonly programs: { pasta: string; setpriv: string; nft: string };
  private readonly uidBase: number;
  private tableReady = false;

  constructor(private readonly options: EgressOptions) {
    this.table = `alacarte_${options.instance}`;
    this.uidBase = options.uidBase ?? DEFAULT_EGRESS_UID_BASE;
    const find = (name: string) =>
      ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, name)).find((p) => existsSync(p));
    const pasta = find('pasta');
    const setpriv = find('setpriv');
    const nft = find('nft');
    this.programs = { pasta: pasta ?? 'pasta', setpriv: setpriv ?? 'setpriv', nft: nft ?? 'nft' };
    this.unavailable = !pasta
      ? 'egress needs pasta (Debian package passt)'
      : !nft
        ? 'egress needs nft (Debian package nftables)'
        : !setpriv
          ? 'egress needs setpriv (util-linux)'
          : undefined;
  }

  /** What the sandboxes' /etc/resolv.conf says: the configured resolver or pasta's forwarder. */
  resolvConf(): string {
    return `nameserver ${this.options.dns ?? EGRESS_ADDRESSES.dnsForwarder}\n`;
  }

  /** The DNS servers egress sandboxes may reach (port 53): the configured one or the host's. */
  resolvers(): string[] {
    if (this.options.dns) return [this.options.dns];
    return hostResolvers(readText('/etc/resolv.conf'));
  }

  /**
   * Gives a sandbox its network: its rules and pasta, both in place before the lease's command
   * runs. Throws with pasta's or nft's message when either fails; the caller then calls detach()
   * (start() does, removing the sandbox).
   */
  async attach(target: EgressTarget): Promise<void> {
    if (this.unavailable) throw new Error(this.unavailable);
    await this.ensureTable();
    const uid = this.claimUid(target.name);
    // Side by side: pasta opens no socket of its own before the tenant sends something, and the
    // tenant's command starts only once both are done. Whatever fails, pasta is recorded once it
    // runs, so that the caller's detach() ends it: it never runs on without its rules.
    const [rules, pasta] = await Promise.allSettled([
      this.applySandboxRules(target, uid),
      this.startPasta(target, uid),
    ]);
    if (pasta.status === 'rejected') throw pasta.reason;
    const pid = pasta.value;
    writeAtomic(join(target.dir, 'egress.json'), JSON.stringify({ uid, pid } satisfies EgressRecord));
    if (rules.status === 'rejected') throw rules.reason;
    // pasta is a host process working for the tenant: its CPU time counts against the lease's quota.
    for (const file of target.procsFiles) {
      try {
        writeFileSync(file, String(pid));
      } catch {
        // a hierarchy without this sandbox's cgroup
      }
    }
  }

  /**
   * After a node restart (list()): the rules again (idempotent) and pasta again if it has ended,
   * so a sandbox that had egress keeps it.
   */
  async restore(target: EgressTarget): Promise<void> {
    const record = readRecord(target.dir);
    if (record && this.pastaAlive(record)) {
      await this.ensureTable();
      await this.applySandboxRules(target, record.uid);
      return;
    }
    this.options.logger.info(`alacarte: restarting the egress network of sandbox ${target.name}`);
    await this.attach(target);
  }

  /** Ends pasta and removes the sandbox's rules and uid; a sandbox that never had egress is fine. */
  async detach(dir: string, name: string): Promise<void> {
    const record = readRecord(dir);
    // A crash may have left the claim without the record (or the other way round).
    const uid = record?.uid ?? this.claimedUid(name);
    if (uid === undefined) return;
    if (record && this.pastaAlive(record)) process.kill(record.pid, 'SIGKILL');
    else if (!record) killUid(uid);
    // The uid is handed out again only once nothing runs as it any more.
    for (let i = 0; i < 200 && runsAs(uid, record?.pid); i++) await sleep(10);
    await this.removeRules([name]);
    rmSync(join(dir, 'egress.json'), { force: true });
    this.releaseUid(name, uid);
  }

  /**
   * Removes what sandboxes no longer alive left: their rules, uid claims and any pasta still
   * running as such a uid (after a crash). `live` holds the container names to keep.
   */
  async sweep(live: ReadonlySet<string>): Promise<void> {
    if (this.unavailable) return;
    const stale = (await this.sandboxChains()).filter((n) => !live.has(n));
    if (stale.length > 0) await this.removeRules(stale);
    for (const claim of this.ownClaims()) {
      if (live.has(claim.name)) continue;
      killUid(claim.uid);
      for (let i = 0; i < 200 && runsAs(claim.uid); i++) await sleep(10);
      rmSync(join(UID_CLAIMS, String(claim.uid)), { force: true });
    }
  }

  /** Drops the table once no sandbox has rules in it (sandboxes keep running after close()). */
  async close(): Promise<void> {
    if (this.unavailable || (await this.sandboxChains()).length > 0) return;
    await runProcess(this.programs.nft, ['delete', 'table', 'inet', this.table]);
    this.tableReady = false;
  }

  private async ensureTable(): Promise<void> {
    if (this.tableReady) return;
    await this.nft(baseRuleset(this.table, this.resolvers()));
    this.tableReady = true;
  }

  private async nft(script: string): Promise<void> {
    const r = await runWithInput(this.programs.nft, ['-f', '-'], script);
    if (r.code !== 0) throw new Error(`nft failed: ${r.stderr.trim().slice(0, 500)}`);
  }

  /**
   * Removes sandboxes' chains and the map elements that jump to them (found in the maps themselves,
   * so leftovers of a crash go too). Elements first: a chain still jumped to cannot be deleted.
   */
  private async removeRules(names: string[]): Promise<void> {
    const wanted = new Set(names);
    const t = `inet ${this.table}`;
    const steps: string[] = [];
    for (const map of ['out_uids', 'in_marks']) {
      const r = await runProcess(this.programs.nft, ['list', 'map', 'inet', this.table, map]);
      for (const m of r.stdout.matchAll(/(0x[0-9a-f]+|\d+) : jump [oi]_(w[0-9a-f]{12})/g)) {
        if (m[2] && wanted.has(m[2])) steps.push(`delete element ${t} ${map} { ${m[1]} }`);
      }
    }
    for (const name of names)
      steps.push(`delete chain ${t} ${outChain(name)}`, `delete chain ${t} ${inChain(name)}`);
    // One by one: a step that finds nothing (already gone) must not undo the others.
    for (const step of steps) await runWithInput(this.programs.nft, ['-f', '-'], `${step}\n`);
  }

  /** Container names that have rules in this driver's table. */
  private async sandboxChains(): Promise<string[]> {
    const r = await runProcess(this.programs.nft, ['list', 'table', 'inet', this.table]);
    if (r.code !== 0) return [];
    const names = new Set<string>();
    for (const m of r.stdout.matchAll(/chain [oi]_(w[0-9a-f]{12}) \{/g)) if (m[1]) names.add(m[1]);
    return [...names];
  }

  /** Applies a sandbox's rules; an element a crash left for its uid (another chain) goes first. */
  private async applySandboxRules(target: EgressTarget, uid: number): Promise<void> {
    const script = sandboxRules(this.table, target.name, uid, target.bandwidthMbit);
    try {
      await this.nft(script);
    } catch {
      // Another driver of this instance (a node being replaced) may have dropped the table meanwhile.
      this.tableReady = false;
      await this.ensureTable();
      for (const map of ['out_uids', 'in_marks'])
        await runWithInput(
          this.programs.nft,
          ['-f', '-'],
          `delete element inet ${this.table} ${map} { ${uid} }\n`,
        );
      await this.nft(script);
    }
  }

  /**
   * A uid no other egress sandbox on this host holds, claimed with an exclusive file: derived from
   * the container name, the next free one on a collision. Kept if the sandbox already has one.
   */
  private claimUid(name: string): number {
    const existing = this.claimedUid(name);
    if (existing !== undefined) return existing;
    mkdirSync(UID_CLAIMS, { recursive: true, mode: 0o700 });
    const start = createHash('sha256').update(`${this.options.instance}/${name}`).digest().readUInt32BE(0);
    for (let i = 0; i < EGRESS_UID_COUNT; i++) {
      const uid = this.uidBase + ((start + i) % EGRESS_UID_COUNT);
      try {
        writeFileSync(join(UID_CLAIMS, String(uid)), `${this.options.instance} ${name}\n`, { flag: 'wx' });
        return uid;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    throw new Error('no free uid for an egress network');
  }

  private claimedUid(name: string): number | undefined {
    return this.ownClaims().find((c) => c.name === name)?.uid;
  }

  private ownClaims(): { uid: number; name: string }[] {
    let files: string[];
    try {
      files = readdirSync(UID_CLAIMS);
    } catch {
      return [];
    }
    const out: { uid: number; name: string }[] = [];
    for (const file of files) {
      const [instance, name] = readText(join(UID_CLAIMS, file)).trim().split(' ');
      if (instance === this.options.instance && name && /^\d+$/.test(file))
        out.push({ uid: Number(file), name });
    }
    return out;
  }

  private releaseUid(name: string, uid: number | undefined): void {
    const claimed = uid ?? this.claimedUid(name);
    if (claimed === undefined) return;
    const [instance, owner] = readText(join(UID_CLAIMS, String(claimed)))
      .trim()
      .split(' ');
    if (instance === this.options.instance && owner === name)
      rmSync(join(UID_CLAIMS, String(claimed)), { force: true });
  }

  /**
   * Starts pasta as `uid`, with capabilities only to join the sandbox's user namespace: once inside
   * it holds none on the host (setns into a user namespace drops them there), and its own sockets,
   * made in the host's network namespace, carry `uid` for the nftables rules. The namespaces and the
   * pid file reach it as inherited descriptors, as it opens paths only after dropping to `uid`.
   */
  private async startPasta(target: EgressTarget, uid: number): Promise<number> {
    const fds: number[] = [];
    try {
      fds.push(openSync(`/proc/${target.initPid}/ns/net`, 'r'));
      fds.push(openSync(`/proc/${target.initPid}/ns/user`, 'r'));
      const pidFile = join(target.dir, 'egress.pid');
      rmSync(pidFile, { force: true });
      const pidFd = openSync(pidFile, 'wx', 0o600);
      fds.push(pidFd);
      fchownSync(pidFd, uid, uid);
      const dns = this.options.dns ? [] : ['--dns-forward', EGRESS_ADDRESSES.dnsForwarder];
      const args = [
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        '--inh-caps=-all,+sys_admin,+net_admin',
        '--ambient-caps=+sys_admin,+net_admin',
        '--',
        this.programs.pasta,
        '--quiet',
        '--config-net',
        '--ipv4-only',
        // No port of the sandbox is published on the host, none of the host's reached through
        // the sandbox's loopback, and the gateway is not the host.
        ...['-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none', '--no-map-gw'],
        ...['-a', EGRESS_ADDRESSES.address, '-n', String(EGRESS_ADDRESSES.prefix)],
        ...['-g', EGRESS_ADDRESSES.gateway, '-I', 'eth0'],
        ...dns,
        ...['--pid', '/proc/self/fd/5', '--netns', '/proc/self/fd/3', '--userns', '/proc/self/fd/4'],
        '--no-netns-quit',
      ];
      // pasta forks into the background once the sandbox's interface is up; its exit is our signal.
      const r = await runInherited(this.programs.setpriv, args, fds);
      if (r.code !== 0) throw new Error(`pasta failed (${r.code}): ${r.stderr.trim().slice(0, 500)}`);
      const pid = Number.parseInt(readText(pidFile), 10);
      if (!(pid > 1) || !this.pastaAlive({ uid, pid })) throw new Error('pasta did not stay running');
      return pid;
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }

  private pastaAlive(record: EgressRecord): boolean {
    return uidOf(record.pid) === record.uid;
  }
}

/** The driver's table: the uid and mark dispatch, and the refusals every egress sandbox shares. */
export function baseRuleset(table: string, resolvers: readonly string[]): string {
  const t = `inet ${table}`;
  const dns = resolvers.map(
    (r) => `add rule ${t} refuse ip daddr ${r} meta l4proto { tcp, udp } th dport 53 accept`,
  );
  return [
    `add table ${t}`,
    `add map ${t} out_uids { typeof meta skuid : verdict; }`,
    `add map ${t} in_marks { typeof ct mark : verdict; }`,
    `add chain ${t} output { type filter hook output priority 0; policy accept; }`,
    `add chain ${t} input { type filter hook input priority 0; policy accept; }`,
    `add chain ${t} refuse`,
    `flush chain ${t} output`,
    `flush chain ${t} input`,
    `flush chain ${t} refuse`,
    `add rule ${t} output meta skuid vmap @out_uids`,
    `add rule ${t} input ct mark vmap @in_marks`,
    // DNS goes to the resolver only; before the address checks, as a host resolver may be private.
    ...dns,
    `add rule ${t} refuse meta l4proto { tcp, udp } th dport 53 drop`,
    // Every address of the host, whichever interface holds it: its loopback, its public ports.
    `add rule ${t} refuse fib daddr type local drop`,
    `add rule ${t} refuse ip daddr { ${REFUSED_IPV4.join(', ')} } drop`,
    `add rule ${t} refuse ip6 daddr { ${REFUSED_IPV6.join(', ')} } drop`,
    `add rule ${t} refuse tcp dport 25 drop`,
    `add rule ${t} refuse meta l4proto != { tcp, udp, icmp, ipv6-icmp } drop`,
    '',
  ].join('\n');
}

/**
 * One sandbox's rules: its uid's packets are marked (so replies find the sandbox's download cap),
 * capped, then checked against the shared refusals. Re-applying replaces them.
 */
export function sandboxRules(table: string, name: string, uid: number, bandwidthMbit: number): string {
  const t = `inet ${table}`;
  const rate = bandwidthMbit * 125_000;
  // The kernel's bucket holds one second of the rate: a transfer may run that much ahead, no more.
  // (Packets not yet cut to the MTU, up to 64 KiB with GSO, fit in it from 1 Mbit/s up.)
  const limit = `limit rate over ${rate} bytes/second drop`;
  return [
    `add chain ${t} ${outChain(name)}`,
    `add chain ${t} ${inChain(name)}`,
    `flush chain ${t} ${outChain(name)}`,
    `flush chain ${t} ${inChain(name)}`,
    `add rule ${t} ${outChain(name)} ct mark set ${uid}`,
    `add rule ${t} ${outChain(name)} ${limit}`,
    `add rule ${t} ${outChain(name)} jump refuse`,
    `add rule ${t} ${inChain(name)} ${limit}`,
    `add element ${t} out_uids { ${uid} : jump ${outChain(name)} }`,
    `add element ${t} in_marks { ${uid} : jump ${inChain(name)} }`,
    '',
  ].join('\n');
}

const outChain = (name: string) => `o_${name}`;
const inChain = (name: string) => `i_${name}`;

/** IPv4 nameservers of a resolv.conf, at most three (what the C library uses). */
export function hostResolvers(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/.exec(line);
    if (m?.[1] && out.length < 3) out.push(m[1]);
  }
  return out;
}

function readRecord(dir: string): EgressRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dir, 'egress.json'), 'utf8')) as Partial<EgressRecord>;
    return Number.isInteger(r.uid) && Number.isInteger(r.pid) ? (r as EgressRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** The real uid of a live (not zombie) process, read from /proc. */
function uidOf(pid: number): number | undefined {
  const status = readText(`/proc/${pid}/status`);
  if (/^State:\s+Z/m.test(status)) return undefined;
  const m = /^Uid:\s+(\d+)/m.exec(status);
  return m?.[1] ? Number(m[1]) : undefined;
}

/** Whether `pid` (or, without one, any process) still runs as `uid`. */
function runsAs(uid: number, pid?: number): boolean {
  if (pid !== undefined) return uidOf(pid) === uid;
  return readdirSync('/proc').some((entry) => /^\d+$/.test(entry) && uidOf(Number(entry)) === uid);
}

/** Kills every process running as `uid` (a pasta whose sandbox went away while the node was down). */
function killUid(uid: number): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (uidOf(Number(entry)) !== uid) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function writeAtomic(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

function runWithInput(
  file: string,
  args: string[],
  input: string,
): Promise<{ code: number; stderr: string }> {
  return runChild(file, args, ['pipe', 'ignore', 'pipe'], input);
}

/** Runs a program with `fds` as its descriptors 3, 4, 5, ...; stdout is not kept. */
function runInherited(
  file: string,
  args: string[],
  fds: number[],
): Promise<{ code: number; stderr: string }> {
  return runChild(file, args, ['ignore', 'ignore', 'pipe', ...fds]);
}

function runChild(
  file: string,
  args: string[],
  stdio: ('pipe' | 'ignore' | number)[],
  input?: string,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 255, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}
