import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, ConfigError, type ConfigInput, loadConfig, sshPortSetting } from '../config.js';
import { AlacarteError } from '../core/errors.js';
import { diskFitsMemory, offerFromJson } from '../core/offers.js';
import type { ComputeDriver } from '../drivers/compute-driver.js';
import { CrunDriver } from '../drivers/crun/crun-driver.js';
import { placeMountedDirs } from '../drivers/crun/host-dirs.js';
import { ImageStore } from '../drivers/crun/image-store.js';
import { describeEndpoint, lxdDriverFromConfig } from '../drivers/lxd/lxd-from-config.js';
import { ledger } from '../http/operator-routes.js';
import { createLogger, silentLogger } from '../log.js';
import { AlacarteNode, prepareDataDir } from '../node.js';
import { requireTrustedMintNuts } from '../rails/cashu/nut-06-requirements.js';
import { lockDataDir } from './data-dir-lock.js';
import { listenProbe } from './port-probe.js';

/** The operator's side of the command: run a node, rotate the mint's keys, read the books. */
export async function runOperatorCommand(
  command: 'serve' | 'mint rotate' | 'ledger' | 'payout',
  args: string[],
  usage: string,
): Promise<number> {
  switch (command) {
    case 'serve':
      return serve(args, usage);
    case 'mint rotate':
      return operatorCommand(args, rotateKeyset, MINT_ROTATE_USAGE);
    case 'ledger':
      return operatorCommand(args, printLedger, LEDGER_USAGE);
    case 'payout':
      return payout(args);
  }
}

const DATA_OPTIONS = `  --data DIR      the node's data directory (default ./data, env ALACARTE_DATA): the one
                  alacarte serve was given
  --config FILE   the node's JSON configuration file, if it has one
  -h, --help      this help`;

export const LEDGER_USAGE = `Usage: alacarte ledger [--data DIR] [--config FILE] [--json]

Prints the node's books from its store (as GET /v1/operator/ledger): received = charged +
refunded + held, charged = paid out + payout pending + unpaid, per mint, and the mint's totals.
Works while the node runs.

${DATA_OPTIONS}
  --json          the books as JSON

Examples:
  alacarte ledger --data /var/lib/alacarte
  alacarte ledger --data /var/lib/alacarte --json | jq .unpaid
`;

export const MINT_ROTATE_USAGE = `Usage: alacarte mint rotate [--data DIR] [--config FILE]

Starts a new active keyset of the node's mint; older keysets keep redeeming. A running node picks
it up within seconds.

${DATA_OPTIONS}

Examples:
  alacarte mint rotate --data /var/lib/alacarte
`;

export const PAYOUT_USAGE = `Usage: alacarte payout --to BOLT11 [--from own|MINT_URL] [--data DIR] [--config FILE] [--json]

Pays what the node earned (charged by ended leases, less what was paid out) to a Lightning
invoice of yours, as POST /v1/operator/payout does. The invoice must carry an amount, at most
what the source has unpaid (alacarte ledger shows it).

  --to BOLT11     the invoice to pay
  --from SOURCE   own: the own mint's Lightning backend; a trusted mint's URL: melt the ecash
                  held there. Default: the own mint if its unpaid covers the invoice, else the
                  trusted mint with the most unpaid
${DATA_OPTIONS}
  --json          the payout as JSON

Examples:
  alacarte ledger --data /var/lib/alacarte          # see what is unpaid
  alacarte payout --to lnbc2u1p... --data /var/lib/alacarte
`;

/**
 * The data directory of an existing node, or a ConfigError naming the one looked at: an operator
 * command run from the wrong directory must not quietly create a new node (new mint seed, empty
 * books) and report on that.
 */
function requireNodeData(config: Config): void {
  if (!existsSync(join(config.dataDir, 'mint.seed')))
    throw new ConfigError(
      `no node's data in ${resolve(config.dataDir)} (no mint.seed there): give the data directory alacarte serve uses, with --data DIR or ALACARTE_DATA`,
    );
  // A node on PostgreSQL has no SQLite file: without its URL here, opening the default store
  // would make an empty one and print books of zeros (and pay out nothing) as if they were its.
  if (config.store.url === undefined && !existsSync(join(config.dataDir, 'alacarte.sqlite')))
    throw new ConfigError(
      `no store in ${resolve(config.dataDir)} (no alacarte.sqlite there): a node that keeps its store in PostgreSQL needs its URL here too, as ALACARTE_STORE_URL or store.url in --config FILE`,
    );
}

async function serve(args: string[], usage: string): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'ssh-port': { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const flags: ConfigInput = { host: values.host, dataDir: values.data };
  if (values.port !== undefined) flags.port = portFlag(values.port, '--port');
  const sshPort = values['ssh-port'];
  if (sshPort !== undefined)
    flags.ssh =
      sshPort === 'off' ? sshPortSetting(sshPort) : { enabled: true, port: portFlag(sshPort, '--ssh-port') };
  const config = loadConfig({ file: values.config, env: process.env, flags });
  // Before the driver sets anything up on the host: the node would refuse these mints anyway.
  await requireTrustedMintNuts(config.trustedMints);
  prepareDataDir(config.dataDir);
  // Before anything in the directory is touched: a second node there would share its store, seed and
  // sandboxes. Released on every way out below; after a kill -9 the next start takes it over.
  const lock = lockDataDir(config.dataDir);
  try {
    return await serveLocked(config);
  } finally {
    lock.release();
  }
}

/** serve() once the data directory is this process's alone. */
async function serveLocked(config: Config): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  // A data directory in a private place (a clone in root's home, mktemp -d): what sandboxes mount
  // moves where they can reach it, linked from the data directory.
  const placed = placeMountedDirs(config.dataDir);
  if (placed)
    logger.info(
      `alacarte: images and sandboxes of ${config.dataDir} live in ${placed} (reachable for sandboxes)`,
    );
  const imagesDir = join(config.dataDir, 'images');
  const runtimeDir = join(config.dataDir, 'sandboxes');
  // A taken port is said before the seconds (first start: minutes) of preparing images below.
  for (const port of [config.port, ...(config.ssh.enabled ? [config.ssh.port] : [])]) {
    const err = await listenProbe(config.host, port);
    if (err) throw listenRefusal(err, config.port) ?? err;
  }
  // The first start builds the busybox image and warm sandboxes: a few seconds that say so.
  process.stderr.write('alacarte: checking the host and preparing images…\n');
  let driver: ComputeDriver;
  let driverLine: string;
  if (config.driver.kind === 'lxd') {
    const lxd = await lxdDriverFromConfig(config, logger);
    driver = lxd.driver;
    driverLine = `driver: lxd (${describeEndpoint(lxd.endpoint)}; placement by LXD, no egress)`;
  } else {
    driver = await CrunDriver.create({
      runtimeDir,
      imagesDir,
      logger,
      egress: config.egress,
      warmLayers: config.pool.size,
      warmLayersMax: Math.max(config.pool.size, config.pool.max),
      warmConcurrency: config.pool.concurrency,
    });
    driverLine = 'driver: crun (sandboxes on this machine)';
    for (const o of (config.offers ?? []).map(offerFromJson).filter((o) => !diskFitsMemory(o)))
      process.stderr.write(
        `alacarte: warning: offer ${o.id} has disk_mib ${o.diskMib} over half its memory_mib ${o.memoryMib}; crun holds the disk in the sandbox's memory, so a tenant filling it is killed for memory instead of seeing "No space left on device": lower disk_mib to ${Math.floor(o.memoryMib / 2)} or raise memory_mib\n`,
      );
  }
  const images = new ImageStore(imagesDir, runtimeDir);
  if (!images.has('debian')) {
    // The command as it must be typed for this node's data directory, from any directory.
    const data =
      config.dataDir === resolve('data')
        ? ''
        : ` --data ${/^[\w./-]+$/.test(config.dataDir) ? config.dataDir : `'${config.dataDir.replaceAll("'", "'\\''")}'`}`;
    process.stdout.write(
      `image debian is not built yet: alacarte image build debian${data} (npm start does)\n`,
    );
  }
  const node = await AlacarteNode.create(config, { logger, driver, images: () => images.list() });
  // Before listen(): it starts making sandboxes ahead (prewarm), and from then on a SIGTERM or
  // SIGINT must close the driver, which removes them; with no handler yet the signal killed the
  // process outright (between the banner's first line and the handlers, a test caught it) and
  // left them mounted until the next start. A signal during listen() stops right after it.
  const stopRequested = new Promise<void>((resolve) => {
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    const stop = (signal: string) => {
      // A second signal of either kind ends the process at once (the default action), as the
      // crun README says; the next start removes what this shutdown had not. (With one handler
      // per kind left, a SIGINT after a SIGTERM was ignored, a SIGTERM after a SIGINT was not.)
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.stdout.write(`alacarte: ${signal}, stopping\n`);
      resolve();
    };
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
  const { url, mintUrl, ssh } = await node.listen().catch(async (err: unknown) => {
    await node.close().catch(() => undefined);
    await driver.close().catch(() => undefined);
    throw listenRefusal(err, config.port) ?? err;
  });
  // Where this process answers; the public URL (behind a proxy, say) is what clients are told.
  const local = listenUrl(node.app.server.address(), config.host);
  process.stdout.write(
    `alacarte listening on ${local}\n${local === url ? '' : `public URL: ${url}\n`}mint: ${mintUrl}\ndata: ${config.dataDir}\n${storeLine(config, node.replica)}\n${driverLine}\n`,
  );
  if (ssh) process.stdout.write(`ssh: port ${ssh.port}, host key ${ssh.hostKeySha256}\n`);
  process.stdout.write(`lightning: ${node.lightning.id}\n`);
  if (node.x402)
    process.stdout.write(
      `x402: on (${node.x402.network}, asset ${node.x402.asset}, paid to ${node.x402.pay_to}; refunds and change as ecash of this mint)\n`,
    );
  if (node.lightning.isTestBackend) {
    process.stdout.write(
      `WARNING: Lightning backend '${node.lightning.id}' is a TEST backend: invoices pay themselves, no real money moves.\n`,
    );
    // Its invoices live in this process: another replica cannot look them up (README, replicas).
    if (config.store.url !== undefined)
      process.stdout.write(
        'WARNING: a test Lightning backend is one per process: with several replicas, an invoice made by one is unknown to the others; use one replica, or a real node shared by all.\n',
      );
  }

  await stopRequested;
  // The driver is closed whatever the node's close did (node.close() runs all its steps, then
  // throws the first failure).
  let kept = 0;
  try {
    await node.close();
  } finally {
    // Paid leases' sandboxes are not ended by a stop (their deadlines hold without the node):
    // said, so that an operator does not take them for leftovers.
    kept = (await driver.list().catch(() => [])).length;
    await driver.close();
  }
  process.stdout.write(`alacarte: stopped${keptLine(kept)}\n`);
  return 0;
}

/** The stop line's note on the leases' sandboxes that run on after the node (none: nothing). */
function keptLine(sandboxes: number): string {
  if (sandboxes === 0) return '';
  const next = 'the next start on this data directory takes';
  return sandboxes === 1
    ? `; 1 lease's sandbox keeps running to its deadline (${next} it up again)`
    : `; ${sandboxes} leases' sandboxes keep running to their deadlines (${next} them up again)`;
}

/** http://host:port of a listening server (IPv6 in brackets). */
function listenUrl(address: ReturnType<Server['address']>, host: string): string {
  const port = typeof address === 'object' && address ? address.port : 0;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * A port flag's value as a number, or a ConfigError naming the flag (the schema's own words,
 * "expected number, received NaN", name neither the flag nor what was typed).
 */
function portFlag(value: string, flag: string): number {
  const n = Number(value);
  if (!/^[0-9]{1,5}$/.test(value) || n > 65_535)
    throw new ConfigError(`${flag} wants a port number from 1 to 65535 (0: any free one), got '${value}'`);
  return n;
}

/** A listen error (address taken, or not this machine's) as a message with the next step; else undefined. */
function listenRefusal(err: unknown, httpPort: number): ConfigError | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === 'EADDRNOTAVAIL')
    return new ConfigError(
      `${e.address ?? 'the address'} is not an address of this machine: give --host one of its own (127.0.0.1, or 0.0.0.0 for all)`,
    );
  if (e?.code !== 'EADDRINUSE') return undefined;
  const flag = e.port === httpPort ? '--port' : '--ssh-port';
  return new ConfigError(
    `${e.address ?? 'the address'}:${e.port ?? '?'} is in use (another alacarte node?): stop it, or choose another ${flag}`,
  );
}

/**
 * The banner's `store:` line: SQLite and its file, or PostgreSQL (its URL is not shown: it may
 * hold a password and a host) with this replica's id, which names its sandboxes there.
 */
function storeLine(config: Config, replica: string): string {
  if (config.store.url === undefined) return `store: SQLite (${join(config.dataDir, 'alacarte.sqlite')})`;
  return `store: PostgreSQL (shared by replicas; this one is ${replica})`;
}

/** Runs an operator command against the data directory's store, without starting the server. */
async function operatorCommand(
  args: string[],
  run: (node: AlacarteNode, json: boolean) => Promise<void>,
  usage: string,
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const config = loadConfig({ file: values.config, env: process.env, flags: { dataDir: values.data } });
  requireNodeData(config);
  const node = await AlacarteNode.create(config, { logger: silentLogger() });
  try {
    await run(node, values.json === true);
  } finally {
    await node.close();
  }
  return 0;
}

/**
 * Pays earnings out from the data directory's store, with this process's view of the node (its
 * Lightning backend, its trusted mints). Exit 0 when paid or pending, 1 when refused or failed.
 */
async function payout(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      to: { type: 'string' },
      from: { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(PAYOUT_USAGE);
    return 0;
  }
  if (values.to === undefined) {
    process.stderr.write(`alacarte payout: which invoice? --to BOLT11\n\n${PAYOUT_USAGE}`);
    return 2;
  }
  const config = loadConfig({ file: values.config, env: process.env, flags: { dataDir: values.data } });
  requireNodeData(config);
  // The fake backend's payments live in the process that made them: beside a running node this
  // one would find the node's payout under way unknown, book it failed and pay again. Held to the
  // end, so that no node starts meanwhile either.
  let lock: ReturnType<typeof lockDataDir> | undefined;
  if (config.mint.lightning.backend === 'fake') {
    try {
      lock = lockDataDir(config.dataDir);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(
        'alacarte payout: a node runs on this data directory with the fake Lightning backend, whose payments ' +
          'only it knows: pay out through it (POST /v1/operator/payout with its operator token), or stop it first\n',
      );
      return 1;
    }
  }
  const node = await AlacarteNode.create(config, { logger: silentLogger() }).catch((err: unknown) => {
    lock?.release();
    throw err;
  });
  try {
    const answer = await node.payouts.payout(values.to, values.from);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(answer)}\n`);
    } else {
      const from = answer.source === 'own' ? 'the own mint' : answer.source;
      const what =
        answer.state === 'paid'
          ? `paid ${answer.paid} ${config.mint.unit} (fee ${answer.fee} ${config.mint.unit}) from ${from}`
          : `payout of ${answer.paid} ${config.mint.unit} from ${from} is PENDING: it is resolved at the next start or payout`;
      process.stdout.write(`${what}\npayout ${answer.id}\n`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof AlacarteError)) throw err;
    process.stderr.write(`alacarte: payout refused (${err.code}): ${err.message}\n`);
    const { unpaid, payable } = err.details;
    if (err.code === 'payout_too_large' && typeof unpaid === 'number') {
      // A trusted mint's fee reserve and input fees come out of the same earnings.
      const most = typeof payable === 'number' ? payable : unpaid;
      const fees = most < unpaid ? ' (less the fees the mint keeps back)' : '';
      process.stderr.write(
        `unpaid: ${unpaid} ${config.mint.unit}; ask your wallet for an invoice of at most ${most} ${config.mint.unit}${fees} (alacarte ledger shows it per mint)\n`,
      );
    }
    return 1;
  } finally {
    await node.close();
    lock?.release();
  }
}

async function rotateKeyset(node: AlacarteNode): Promise<void> {
  const id = await node.mint.rotate();
  process.stdout.write(
    `new active keyset: ${id}\n(older keysets keep redeeming; a running node picks it up on its next keyset reload)\n`,
  );
}

async function printLedger(node: AlacarteNode, json: boolean): Promise<void> {
  const books = await ledger(node.db, node.config.mint.unit, node.config.trustedMints);
  if (json) {
    process.stdout.write(`${JSON.stringify(books)}\n`);
    return;
  }
  const u = books.unit;
  const balanced =
    books.received === books.charged + books.refunded + books.held &&
    books.charged === books.paid_out + books.payout_pending + books.unpaid;
  const lines = [
    `received ${books.received} ${u} = charged ${books.charged} + refunded ${books.refunded} + held ${books.held}  ${balanced ? '(balanced)' : '(NOT BALANCED)'}`,
    `charged ${books.charged} ${u} = paid out ${books.paid_out} + payout pending ${books.payout_pending} + unpaid ${books.unpaid}`,
    ...[{ mint: 'own mint', ...books.by_mint.own }, ...books.by_mint.trusted].map(
      (m) =>
        `  at ${m.mint}: received ${m.received} = charged ${m.charged} + refunded ${m.refunded} + held ${m.held}${m.bounced ? `; returned ${m.bounced}` : ''}; paid out ${m.paid_out}, unpaid ${m.unpaid}${m.on_chain > 0 ? ` (payable over Lightning ${m.payable}: x402 income ${m.on_chain} is on chain already)` : ''}`,
    ),
    `mint: issued ${books.mint.issued}, redeemed ${books.mint.redeemed}, outstanding ${books.mint.outstanding}, lightning in ${books.mint.lightning_in}, out ${books.mint.lightning_out}${books.mint.x402_in ? `, x402 in ${books.mint.x402_in}` : ''}`,
    ...books.payouts.map(
      (p) => `payout ${p.id}: ${p.amount} ${u} + fee ${p.fee ?? '?'} from ${p.source}: ${p.state}`,
    ),
    `leases: ${Object.entries(books.leases)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ')}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
