#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, type ConfigInput, loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { AlacarteNode } from '../node.js';

const USAGE = `alacarte — rent Linux sandboxes for ecash, no account

Usage:
  alacarte serve [--host H] [--port P] [--data DIR] [--config FILE]
  alacarte help

serve options:
  --host H        address to listen on (default 127.0.0.1, env ALACARTE_HOST)
  --port P        port to listen on (default 8402, env ALACARTE_PORT)
  --data DIR      data directory: store, mint seed, sandboxes (default ./data, env ALACARTE_DATA)
  --config FILE   JSON configuration file (see README)

Examples:
  alacarte serve
  alacarte serve --host 0.0.0.0 --port 8402 --data /var/lib/alacarte
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
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
  const node = await AlacarteNode.create(config, { logger });
  const { url, mintUrl } = await node.listen();
  process.stdout.write(`alacarte listening on ${url}\nmint: ${mintUrl}\ndata: ${config.dataDir}\n`);

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stdout.write(`alacarte: ${signal}, stopping\n`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await node.close();
  process.stdout.write('alacarte: stopped\n');
  return 0;
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
