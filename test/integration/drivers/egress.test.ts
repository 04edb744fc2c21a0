import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  SandboxHandle,
  SandboxLimits,
  SandboxRef,
  SandboxSpec,
} from '../../../src/drivers/compute-driver.js';
import { CrunDriver } from '../../../src/drivers/crun/crun-driver.js';
import { newLeaseId, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { type CrunTarget, crunSkipReason, findOnPath, makeCrunTarget } from './crun-target.js';
import { ISOLATION_IMAGES, imageTool, type PreparedImage } from './isolation-images.js';
import { makeTestInternet, readFromHost, type TestInternet } from './test-internet.js';

const skipReason =
  crunSkipReason ??
  (['pasta', 'nft', 'dnsmasq', 'setpriv'].find((p) => !findOnPath(p))
    ? 'needs pasta (passt), nft (nftables), dnsmasq (dnsmasq-base) and setpriv (scripts/setup.sh --test)'
    : undefined);

const EGRESS: SandboxLimits = { ...TEST_LIMITS, network: 'egress', bandwidthMbit: 1000 };
const BULK_BYTES = 4 * 1024 * 1024;

/** A command line for the image the sandbox runs (see imageTool); busybox's own by default. */
type Tool = (argv: readonly string[]) => string[];
const asIs: Tool = (argv) => [...argv];

/** Runs a shell script inside; stdout, stderr and the exit code, whatever the code. */
async function run(t: CrunTarget, sandbox: SandboxRef, script: string, timeoutMs = 30_000, tool = asIs) {
  const r = await t.driver.exec(sandbox, {
    command: [...tool(['sh', '-c']), script],
    timeoutMs,
    maxOutputBytes: 1 << 20,
  });
  return { code: r.exitCode, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
}

/** A program of the image, else the sandbox's busybox applet, as a script names it. */
function bin(tool: Tool, name: string): string {
  return tool([name]).join(' ');
}

/**
 * Connects to each address:port from inside at once and reports, per target, what was read
 * (`addr:port=<first line>`; empty when nothing came). A half-close of stdin is avoided: busybox nc
 * reads it from a FIFO opened read-write, which never ends.
 */
async function reach(
  t: CrunTarget,
  sandbox: SandboxRef,
  targets: string[],
  tool = asIs,
): Promise<Record<string, string>> {
  const script = [
    `${bin(tool, 'mkfifo')} /tmp/in 2>/dev/null; exec 3<>/tmp/in`,
    ...targets.map((target) => {
      const [a, p] = target.split(':');
      return `(line=$(${bin(tool, 'nc')} -w 3 ${a} ${p} <&3 2>/dev/null | ${bin(tool, 'head')} -n 1); echo "${target}=$line") &`;
    }),
    'wait',
  ].join('\n');
  const r = await run(t, sandbox, script, 30_000, tool);
  const out: Record<string, string> = {};
  for (const line of r.out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

function hostIPv4Addresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === 'IPv4')
    .map((a) => (a as { address: string }).address);
}

if (skipReason) {
  describe.skip(`egress: skipped, ${skipReason}`, () => {
    it('runs only as root with pasta, nftables and dnsmasq', () => {});
  });
} else {
  describe('egress offers (pasta + host nftables)', () => {
    let inet: TestInternet;
    let hostServer: Server;
    let hostPort = 0;

    beforeAll(async () => {
      inet = await makeTestInternet(BULK_BYTES);
      // Stands for the node's own port (and anything else on the host): listening on every address.
      hostServer = createServer((c) => c.end('host service\n'));
      await new Promise<void>((r) => hostServer.listen(0, '0.0.0.0', r));
      hostPort = (hostServer.address() as { port: number }).port;
    });
    afterAll(async () => {
      hostServer?.close();
      await inet?.dispose();
    });

    // The refusals hold whatever the image: the built-in busybox, debian (no busybox tools: nc, ip and
    // nslookup are the sandbox's own busybox) and a pulled OCI image. One egress sandbox per image
    // serves every case; a plain one beside it is both the plain offer and the neighbour.
    describe.each(ISOLATION_IMAGES)('refusals on $name', (image) => {
      let t: CrunTarget;
      let prepared: PreparedImage;
      let s: SandboxRef;
      let plain: SandboxHandle;
      let neighbourPort = 0;
      const started: string[] = [];
      const tool: Tool = (argv) => imageTool(t.options.imagesDir, image.name)(argv);

      const start = async (limits: SandboxLimits, extra: Partial<SandboxSpec> = {}) => {
        const leaseId = newLeaseId();
        started.push(leaseId);
        return t.driver.start(
          { leaseId, image: image.name, ...extra },
          limits,
          new Date(Date.now() + 600_000),
        );
      };

      beforeAll(async () => {
        prepared = await image.prepare();
        t = await makeCrunTarget({
          egress: { dns: inet.dns },
          ...(prepared.imagesDir ? { imagesDir: prepared.imagesDir } : {}),
        });
        s = await start(EGRESS);
        plain = await start(TEST_LIMITS, {
          command: tool(['nc', '-ll', '-p', '8080', '-e', 'echo', 'neighbour']),
          ports: [8080],
        });
        neighbourPort = Number(new URL(plain.ports[8080] ?? '').port);
      }, 600_000);
      afterAll(async () => {
        if (!t) return;
        await Promise.allSettled(started.map((leaseId) => t.driver.stop({ leaseId })));
        await t.dispose();
        prepared?.cleanup();
      });

      it('reaches a server on the internet and resolves names through the configured DNS server', async () => {
        expect(await reach(t, s, [`${inet.server}:80`], tool)).toEqual({
          [`${inet.server}:80`]: 'hello from the internet',
        });
        // pasta publishes nothing of the sandbox on the host: no listening socket of its uid.
        const { uid } = JSON.parse(
          readFileSync(join(t.base, 'rt', containerName(t, s.leaseId), 'egress.json'), 'utf8'),
        ) as { uid: number };
        expect(listeningUids()).not.toContain(uid);
        const dns = await run(
          t,
          s,
          `cat /etc/resolv.conf; ${bin(tool, 'nslookup')} internet.test`,
          30_000,
          tool,
        );
        expect(dns.out).toContain(`nameserver ${inet.dns}`);
        expect(dns.out).toMatch(new RegExp(`Address:\\s+${inet.server.replace(/\./g, '\\.')}`));
      });

      it('refuses every forbidden range, the host (its loopback and its own ports) and port 25', async () => {
        // Each of these answers from the host: what the sandbox meets is a refusal, not a missing route.
        for (const a of Object.values(inet.forbidden)) expect(await readFromHost(a, 80)).toContain('hello');
        expect(await readFromHost(inet.server, 25)).toContain('220');
        const hostAddresses = hostIPv4Addresses();
        for (const a of hostAddresses) expect(await readFromHost(a, hostPort)).toContain('host service');

        const targets = [
          ...Object.values(inet.forbidden).map((a) => `${a}:80`),
          `${inet.server}:25`,
          // The host's addresses (loopback included, through the gateway) and the veth end.
          ...hostAddresses.map((a) => `${a}:${hostPort}`),
          `10.0.2.2:${hostPort}`,
          `${inet.hostEnd}:${hostPort}`,
        ];
        // DNS to any server but the configured one is refused (one listens on the server's address).
        // Both wait out their timeouts, so at once.
        const [seen, other] = await Promise.all([
          reach(t, s, [...targets, `${inet.server}:80`], tool),
          run(t, s, `${bin(tool, 'nslookup')} internet.test ${inet.server}`, 30_000, tool),
        ]);
        expect(seen[`${inet.server}:80`]).toBe('hello from the internet');
        for (const target of targets) expect({ target, read: seen[target] }).toEqual({ target, read: '' });
        expect(other.out).not.toMatch(new RegExp(`Address:\\s+${inet.server.replace(/\./g, '\\.')}`));
        // No IPv6 at all.
        const v6 = await run(t, s, `${bin(tool, 'nc')} -w 2 fd00::1 80 </dev/null`, 30_000, tool);
        expect({ code: v6.code, unreachable: /Network is unreachable/.test(v6.err) }).toEqual({
          code: 1,
          unreachable: true,
        });
      });

      it("a neighbour is out of reach: another sandbox's published port answers the host, not an egress sandbox", async () => {
        // The neighbour's nc may still be starting: the host reaches it once it listens.
        expect(
          await waitFor(
            async () =>
              (await readFromHost('127.0.0.1', neighbourPort).catch(() => '')).includes('neighbour'),
            20_000,
          ),
        ).toBe(true);
        const targets = [...hostIPv4Addresses(), '10.0.2.2', inet.hostEnd].map(
          (a) => `${a}:${neighbourPort}`,
        );
        const seen = await reach(t, s, targets, tool);
        for (const target of targets) expect({ target, read: seen[target] }).toEqual({ target, read: '' });
      });

      it('a sandbox of a plain offer reaches nothing', async () => {
        const seen = await reach(t, plain, [`${inet.server}:80`, `${inet.hostEnd}:${hostPort}`], tool);
        expect(seen).toEqual({ [`${inet.server}:80`]: '', [`${inet.hostEnd}:${hostPort}`]: '' });
        const routes = await run(t, plain, `${bin(tool, 'ip')} route`, 30_000, tool);
        expect({ code: routes.code, out: routes.out }).toEqual({ code: 0, out: '' });
        const lookup = await run(t, plain, `${bin(tool, 'nslookup')} internet.test`, 30_000, tool);
        // The tool ran (on every image) and found no way out, not an answer.
        expect({ code: lookup.code, unreachable: /Network is unreachable/.test(lookup.err) }).toEqual({
          code: 1,
          unreachable: true,
        });
        expect(lookup.out).not.toContain(inet.server);
      });

      // Last: were an attempt to succeed, the cases above would no longer say anything.
      it('root inside cannot undo the refusals: changing routes and addresses fails and changes nothing', async () => {
        const ip = bin(tool, 'ip');
        const attempts = await run(
          t,
          s,
          [
            `${ip} route del default; echo "del=$?"`,
            `${ip} route add ${inet.forbidden['10/8']}/32 via 10.0.2.2; echo "add=$?"`,
            `${ip} addr add 10.213.77.1/8 dev eth0; echo "addr=$?"`,
            `${ip} link set eth0 down; echo "down=$?"`,
            'iptables -F 2>/dev/null; echo "iptables=$?"',
          ].join('\n'),
          30_000,
          tool,
        );
        for (const step of ['del', 'add', 'addr', 'down', 'iptables'])
          expect(attempts.out).toMatch(new RegExp(`${step}=[1-9]`));
        const seen = await reach(t, s, [`${inet.forbidden['10/8']}:80`, `${inet.server}:80`], tool);
        expect(seen).toEqual({
          [`${inet.forbidden['10/8']}:80`]: '',
          [`${inet.server}:80`]: 'hello from the internet',
        });
      });
    });

    // The driver's side of egress (bandwidth, restarts, crashes, start time): the image plays no part.
    describe('the driver (on busybox)', () => {
      let t: CrunTarget;
      const started: string[] = [];

      const start = async (limits: SandboxLimits) => {
        const leaseId = newLeaseId();
        started.push(leaseId);
        const t0 = performance.now();
        await t.driver.start({ leaseId, image: 'busybox' }, limits, new Date(Date.now() + 600_000));
        return { leaseId, ms: performance.now() - t0 };
      };

      beforeAll(async () => {
        t = await makeCrunTarget({ egress: { dns: inet.dns } });
      });
      afterAll(async () => {
        if (!t) return;
        await Promise.allSettled(started.map((leaseId) => t.driver.stop({ leaseId })));
        await t.dispose();
      });

      it('caps the bandwidth: a download takes at least the time the cap allows', async () => {
        const mbit = 8; // 1 000 000 bytes/s
        const s = await start({ ...EGRESS, bandwidthMbit: mbit });
        const t0 = performance.now();
        const r = await run(
          t,
          s,
          `mkfifo /tmp/in; exec 3<>/tmp/in; nc -w 10 ${inet.server} 9000 <&3 | wc -c`,
          60_000,
        );
        const seconds = (performance.now() - t0) / 1000;
        expect(Number(r.out.trim())).toBe(inet.bulkBytes);
        // The host's token bucket holds one second of the rate: at most that passes ahead of it.
        const rate = mbit * 125_000;
        expect(seconds).toBeGreaterThanOrEqual((inet.bulkBytes - rate) / rate);
      });

      it('caps the upload too', async () => {
        const mbit = 8;
        const s = await start({ ...EGRESS, bandwidthMbit: mbit });
        const t0 = performance.now();
        // Through a FIFO held open: nc's input never ends, so no half-close (see the driver README).
        const r = await run(
          t,
          s,
          `mkfifo /tmp/up; exec 3<>/tmp/up; head -c ${BULK_BYTES} /dev/zero >&3 & nc -w 10 ${inet.server} 9001 <&3`,
          60_000,
        );
        const seconds = (performance.now() - t0) / 1000;
        expect(Number(r.out.trim())).toBe(BULK_BYTES);
        const rate = mbit * 125_000;
        expect(seconds).toBeGreaterThanOrEqual((BULK_BYTES - rate) / rate);
      });

      it('removes pasta and the rules with the sandbox; a restarted driver brings a dead pasta back', async () => {
        const s = await start(EGRESS);
        const name = containerName(t, s.leaseId);
        const dir = join(t.base, 'rt', name);
        const record = JSON.parse(readFileSync(join(dir, 'egress.json'), 'utf8')) as {
          uid: number;
          pid: number;
        };
        expect(existsSync(`/proc/${record.pid}`)).toBe(true);
        // pasta dies (as in a crash); a new driver on the same directories (a node restart) restarts it.
        process.kill(record.pid, 'SIGKILL');
        await new Promise((r) => setTimeout(r, 200));
        const second = await CrunDriver.create(t.options);
        try {
          const again = JSON.parse(readFileSync(join(dir, 'egress.json'), 'utf8')) as {
            uid: number;
            pid: number;
          };
          expect(again.pid).not.toBe(record.pid);
          expect(again.uid).toBe(record.uid);
          expect(await reach(t, s, [`${inet.server}:80`])).toEqual({
            [`${inet.server}:80`]: 'hello from the internet',
          });
          await second.stop(s);
          expect(statusUid(again.pid)).not.toBe(again.uid);
          expect(existsSync(`/run/alacarte-egress-uids/${again.uid}`)).toBe(false);
          expect(nftChains(`alacarte_${t.options.instance}`)).toContain('chain refuse');
          expect(nftChains(`alacarte_${t.options.instance}`)).not.toContain(name);
        } finally {
          await second.close();
        }
      });

      it('a crash leaves nothing behind: the next driver removes pasta, rules and uid of a sandbox that died', async () => {
        const s = await start(EGRESS);
        const name = containerName(t, s.leaseId);
        const dir = join(t.base, 'rt', name);
        const record = JSON.parse(readFileSync(join(dir, 'egress.json'), 'utf8')) as {
          uid: number;
          pid: number;
        };
        // The worst moment: the driver died before it recorded pasta; then the sandbox ended.
        rmSync(join(dir, 'egress.json'));
        process.kill(Number(readFileSync(join(dir, 'init.pid'), 'utf8')), 'SIGKILL');
        const second = await CrunDriver.create(t.options);
        try {
          expect(statusUid(record.pid)).not.toBe(record.uid);
          expect(existsSync(`/run/alacarte-egress-uids/${record.uid}`)).toBe(false);
          expect(nftChains(`alacarte_${t.options.instance}`)).not.toContain(name);
          // And egress starts as before.
          const again = await start(EGRESS);
          expect(await reach(t, again, [`${inet.server}:80`])).toEqual({
            [`${inet.server}:80`]: 'hello from the internet',
          });
        } finally {
          await second.close();
        }
      });

      it('measures the extra start time of an egress lease (printed, not asserted)', async () => {
        const plain: number[] = [];
        const egress: number[] = [];
        for (let i = 0; i < 5; i++) {
          const a = await start(TEST_LIMITS);
          plain.push(a.ms);
          await t.driver.stop(a);
          const b = await start(EGRESS);
          egress.push(b.ms);
          await t.driver.stop(b);
        }
        const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
        console.log(
          `start(): plain median ${median(plain).toFixed(1)} ms, egress median ${median(egress).toFixed(1)} ms`,
        );
        expect(egress.length).toBe(5);
      });
    });
  });
}

/** The sandbox directory's name (the container) behind a lease id. */
function containerName(t: CrunTarget, leaseId: string): string {
  return readlinkSync(join(t.base, 'rt', leaseId));
}

/** The uid a process runs as; undefined once it has exited (a zombie has). */
function statusUid(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+Z/m.test(status)) return undefined;
    return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  } catch {
    return undefined;
  }
}

/** An nftables table as nft lists it (empty when the table is gone). */
function nftChains(table: string): string {
  try {
    return execFileSync('nft', ['list', 'table', 'inet', table], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return '';
  }
}

/** The uids owning a listening TCP socket on the host (/proc/net/tcp and tcp6, state 0A). */
function listeningUids(): number[] {
  const uids: number[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && cols[7] !== undefined) uids.push(Number(cols[7]));
    }
  }
  return uids;
}
