#!/usr/bin/env node
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, type ConfigInput, loadConfig } from '../config.js';
import { CrunDriver } from '../drivers/crun/crun-driver.js';
import { ledger } from '../http/operator-routes.js';
import { createLogger, silentLogger } from '../log.js';
import { AlacarteNode } from '../node.js';

const USAGE = `alacarte — rent Linux sandboxes for ecash, no account

Usage:
  alacarte serve [--host H] [--port P] [--data DIR] [--config FILE]
  alacarte mint rotate [--data DIR] [--config FILE]
  alacarte ledger [--data DIR] [--config FILE] [--json]
  alacarte help

serve options:
  --host H        address to listen on (default 127.0.0.1, env ALACARTE_HOST)
  --port P        port to listen on (default 8402, env ALACARTE_PORT)
  --data DIR      data directory: store, mint seed, sandboxes (default ./data, env ALACARTE_DATA)
  --config FILE   JSON configuration file (see README)

operator commands:
  mint rotate     start a new mint keyset; old keysets keep redeeming
  ledger          print the books (as GET /v1/operator/ledger) from the store

Examples:
  alacarte serve
  alacarte ledger --data /var/lib/alacarte
  alacarte serve --host 0.0.0.0 --port 8402 --data /var/lib/alacarte
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'mint':
      if (rest[0] !== 'rotate') {
        process.stderr.write('alacarte: usage: alacarte mint rotate [--data DIR]\n');
        return 2;
      }
      return operatorCommand(rest.slice(1), rotateKeyset);
    case 'ledger':
      return operatorCommand(rest, printLedger);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`alacarte: unknown command '${command}' — run: alacarte help\n`);
      return 2;
  }
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const flags: ConfigInput = { host: values.host, dataDir: values.data };
  if (values.port !== undefined) flags.port = Number(values.port);
  const config = loadConfig({ file: values.config, env: process.env, flags });
  const logger = createLogger({ level: config.logLevel });
  const imagesDir = join(config.dataDir, 'images');
  const driver = await CrunDriver.create({
    runtimeDir: join(config.dataDir, 'sandboxes'),
    imagesDir,
    logger,
  });
  const node = await AlacarteNode.create(config, { logger, driver, images: listImages(imagesDir) });
  const { url, mintUrl } = await node.listen();
  process.stdout.write(`alacarte listening on ${url}\nmint: ${mintUrl}\ndata: ${config.dataDir}\n`);
  if (node.lightning.isTestBackend) {
    process.stdout.write(
      `WARNING: Lightning backend '${node.lightning.id}' is a TEST backend: invoices pay themselves, no real money moves.\n`,
    );
  }

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stdout.write(`alacarte: ${signal}, stopping\n`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await node.close();
  await driver.close();
  process.stdout.write('alacarte: stopped\n');
  return 0;
}

/** Runs an operator command against the data directory's store, without starting the server. */
async function operatorCommand(
  args: string[],
  run: (node: AlacarteNode, json: boolean) => Promise<void>,
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { data: { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean' } },
    strict: true,
  });
  const config = loadConfig({ file: values.config, env: process.env, flags: { dataDir: values.data } });
  const node = await AlacarteNode.create(config, { logger: silentLogger() });
  try {
    await run(node, values.json === true);
  } finally {
    await node.close();
  }
  return 0;
}

async function rotateKeyset(node: AlacarteNode): Promise<void> {
  const id = await node.mint.rotate();
  process.stdout.write(
    `new active keyset: ${id}\n(older keysets keep redeeming; a running node picks it up on its next keyset reload)\n`,
  );
}

async function printLedger(node: AlacarteNode, json: boolean): Promise<void> {
  const books = await ledger(node.db, node.config.mint.unit);
  if (json) {
    process.stdout.write(`${JSON.stringify(books)}\n`);
    return;
  }
  const u = books.unit;
  const balanced = books.received === books.charged + books.refunded + books.held;
  process.stdout.write(
    [
      `received ${books.received} ${u} = charged ${books.charged} + refunded ${books.refunded} + held ${books.held}  ${balanced ? '(balanced)' : '(NOT BALANCED)'}`,
      `mint: issued ${books.mint.issued}, redeemed ${books.mint.redeemed}, outstanding ${books.mint.outstanding}, lightning in ${books.mint.lightning_in}, out ${books.mint.lightning_out}`,
      `leases: ${Object.entries(books.leases)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}`,
    ].join('\n') + '\n',
  );
}

function listImages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof ConfigError || err instanceof TypeError ? err.message : String(err);
    process.stderr.write(`alacarte: ${message}\n`);
    process.exitCode = 1;
  },
);
