import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A network namespace that plays "the internet" for egress tests, routed from the host over a veth
 * pair: a TCP server answering on every address of the namespace (ports 80 and 25, a bulk sender
 * on 9000 and a byte counter on 9001) and a DNS server (Debian's dnsmasq). Besides public documentation addresses
 * (198.51.100.0/24 only: this machine's own way out — its package mirror and registry — may sit on
 * another documentation range, and a route of ours over it cut every download of a concurrent test),
 * the namespace also holds one address of each range an egress
 * sandbox must not reach, routed from the host too, so that a refusal there is a real refusal and
 * not a missing route. Only /32 routes are added to the host, with a random last octet, so the
 * host's own networks (and a concurrent run) are left alone.
 */
export interface TestInternet {
  /** The public server (ports 80, 25, 9000). */
  server: string;
  /** The DNS server sandboxes are configured with; `internet.test` resolves to `server`. */
  dns: string;
  /** An address of each forbidden range, all answering on port 80 from the host. */
  forbidden: Record<string, string>;
  /** The host's end of the veth pair: an address of the host itself. */
  hostEnd: string;
  /** Bytes the server on port 9000 sends to each connection. */
  bulkBytes: number;
  /** The network namespace's name, to run more servers "on the internet" (`ip netns exec`). */
  namespace: string;
  dispose(): Promise<void>;
}

const SERVER_JS = `
const net = require('node:net');
const bulk = Buffer.alloc(Number(process.argv[2]), 120);
const serve = (port, answer) => net.createServer((c) => { c.on('error', () => {}); c.end(answer); }).listen(port, '0.0.0.0');
serve(80, 'hello from the internet\\n');
serve(25, '220 smtp ready\\n');
serve(9000, bulk);
// Counts what it is sent and answers the count once as many bytes as the bulk sender sends have
// come (not at the client's end of input: pasta 2023-03 mishandles a half-close, see the README).
net.createServer((c) => {
  let n = 0;
  c.on('error', () => {});
  c.on('data', (b) => { n += b.length; if (n >= bulk.length) c.end(n + '\\n'); });
}).listen(9001, '0.0.0.0');
process.stdout.write('ready\\n');
setInterval(() => {}, 1 << 30);
`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export async function makeTestInternet(bulkBytes: number): Promise<TestInternet> {
  const tag = randomBytes(3).toString('hex');
  const ns = `alacarte-inet-${tag}`;
  const hostIf = `aih${tag}`;
  const nsIf = `ain${tag}`;
  // Servers in the lower half of 198.51.100.0/24, the link a /30 of its upper half, at random and
  // claimed (test files run side by side): two namespaces with the same link address would route
  // one's servers into the other, where a connection hangs for minutes instead of failing.
  // Server and resolver: 198.51.100.k and k+1, k even from 2 to 124.
  const k = 2 * claimNumber(ns, 'servers', 1, 63);
  let link: number;
  try {
    link = 128 + 4 * claimNumber(ns, 'link', 0, 32);
  } catch (e) {
    releaseClaims(ns);
    throw e;
  }
  const hostEnd = `198.51.100.${link + 1}`;
  const nsEnd = `198.51.100.${link + 2}`;
  const server = `198.51.100.${k}`;
  const dns = `198.51.100.${k + 1}`;
  const forbidden = {
    '10/8': `10.213.77.${k}`,
    '172.16/12': `172.31.213.${k}`,
    '192.168/16': `192.168.213.${k}`,
    '169.254/16': `169.254.213.${k}`,
    '100.64/10': `100.100.213.${k}`,
  };
  const routed = [server, dns, ...Object.values(forbidden)];
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-inet-'));
  const children: ChildProcess[] = [];
  const cleanup = async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const a of routed) {
      try {
        ip('route', 'del', `${a}/32`, 'via', nsEnd);
      } catch {
        // not added
      }
    }
    try {
      ip('link', 'del', hostIf);
    } catch {
      // gone with the namespace
    }
    try {
      ip('netns', 'del', ns);
    } catch {
      // not made
    }
    rmSync(dir, { recursive: true, force: true });
    releaseClaims(ns);
  };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', ns);
    ip('addr', 'add', `${hostEnd}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', ns, 'addr', 'add', `${nsEnd}/30`, 'dev', nsIf);
    ip('-n', ns, 'link', 'set', nsIf, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    for (const a of routed) {
      ip('-n', ns, 'addr', 'add', `${a}/32`, 'dev', 'lo');
      ip('route', 'add', `${a}/32`, 'via', nsEnd);
    }
    ip('-n', ns, 'route', 'add', 'default', 'via', hostEnd);
    writeFileSync(join(dir, 'server.cjs'), SERVER_JS);
    const server$ = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, join(dir, 'server.cjs'), String(bulkBytes)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    children.push(server$);
    await new Promise<void>((resolve, reject) => {
      server$.stdout?.once('data', () => resolve());
      server$.once('exit', (code) => reject(new Error(`test server exited ${code}`)));
    });
    // DNS on the resolver's address, and also on the server's: a DNS server the sandbox must not use.
    const dnsmasq = spawn(
      'ip',
      [
        ...['netns', 'exec', ns, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null'],
        ...['--no-resolv', '--no-hosts', '--bind-interfaces', '--pid-file='],
        ...[`--listen-address=${dns}`, `--listen-address=${server}`, `--address=/internet.test/${server}`],
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    children.push(dnsmasq);
    await untilListening(dns, 53);
    for (const a of [server, ...Object.values(forbidden)]) await untilListening(a, 80);
    return { server, dns, forbidden, hostEnd, bulkBytes, namespace: ns, dispose: cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Resolves once a TCP connection from the host to address:port succeeds (dnsmasq serves TCP too). */
async function untilListening(address: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, address);
      // A dropped SYN is retried by the kernel for minutes: each try is bounded instead.
      s.setTimeout(1000, () => {
        s.destroy();
        resolve(false);
      });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${address}:${port} does not answer from the host`);
}

/** Where the namespaces of every test run on this host claim their numbers (one file per number). */
const CLAIMS = '/run/alacarte-test-inet';

/**
 * Claims a number from [from, to) of a kind for namespace ns, atomically across processes (a file
 * created exclusively per number); a claim whose namespace is gone (a crashed run) is taken over.
 * Throws when every number is taken.
 */
function claimNumber(ns: string, kind: string, from: number, to: number): number {
  mkdirSync(CLAIMS, { recursive: true, mode: 0o700 });
  const live = new Set(
    execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]),
  );
  for (let tries = 0; tries < 4 * (to - from); tries++) {
    const n = randomInt(from, to);
    if (tryClaim(join(CLAIMS, `${kind}.${n}`), ns, live)) return n;
  }
  throw new Error(`no free test addresses (${kind}): ${CLAIMS} is full`);
}

function tryClaim(file: string, ns: string, live: Set<string | undefined>): boolean {
  try {
    writeFileSync(file, ns, { flag: 'wx' });
    return true;
  } catch {
    let holder = '';
    try {
      holder = readFileSync(file, 'utf8');
    } catch {
      return false;
    }
    // A claim is made before its namespace: only a claim older than a minute can be stale.
    if (live.has(holder) || Date.now() - statMtime(file) < 60_000) return false;
    rmSync(file, { force: true });
    try {
      writeFileSync(file, ns, { flag: 'wx' });
      return true;
    } catch {
      return false;
    }
  }
}

function statMtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return Date.now();
  }
}

function releaseClaims(ns: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(CLAIMS);
  } catch {
    return;
  }
  for (const name of names) {
    const file = join(CLAIMS, name);
    try {
      if (readFileSync(file, 'utf8') === ns) rmSync(file, { force: true });
    } catch {
      // released already
    }
  }
}

/** What a TCP client on the host reads from address:port (the banner), to show it is reachable. */
export function readFromHost(address: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, address);
    let text = '';
    s.on('data', (b) => {
      text += b.toString('utf8');
    });
    s.once('end', () => resolve(text));
    s.once('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
  });
}
