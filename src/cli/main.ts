#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { failureText } from './failure.js';

// A reader that stops early (`| head`, `| cmp`) closes the pipe: end as Unix tools do on SIGPIPE
// (status 141), not with an unhandled 'error' event and a stack trace on the terminal.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(141);
    throw e;
  });
}

// The server side loads only when asked for, so renter commands start quickly.
const operator = () => import('./operator-commands.js');
const renter = () => import('./renter/index.js');
const images = () => import('./image-commands.js');

const USAGE = `alacarte — rent Linux sandboxes for ecash, no account

Usage:
  alacarte serve [--host H] [--port P] [--ssh-port P|off] [--data DIR] [--config FILE]
  alacarte mint rotate [--data DIR] [--config FILE]
  alacarte ledger [--data DIR] [--config FILE] [--json]
  alacarte image build debian | pull REF | list | rm NAME   (alacarte image help)
  alacarte payout --to BOLT11 [--from own|MINT_URL] [--data DIR] [--config FILE] [--json]
  alacarte mcp --max-total SAT [--max-per-call SAT] [--url URL]   (MCP tools for agents, on stdio)
  alacarte help | version

serve options:
  --host H        address to listen on (default 127.0.0.1, env ALACARTE_HOST)
  --port P        port to listen on (default 8402, env ALACARTE_PORT)
  --ssh-port P    SSH port for leases (default 2222, env ALACARTE_SSH_PORT; off: no SSH)
  --data DIR      data directory: store, mint seed, sandboxes (default ./data, env ALACARTE_DATA)
  --config FILE   JSON configuration file (see README; driver: {"kind": "lxd"} or env
                  ALACARTE_DRIVER=lxd runs sandboxes as LXD instances, crun by default)

operator commands:
  mint rotate     start a new mint keyset; old keysets keep redeeming
  ledger          print the books (as GET /v1/operator/ledger) from the store
  image           build the debian image, pull any OCI image, list and remove images
  payout          pay earnings out to a Lightning invoice (as POST /v1/operator/payout): from the
                  own mint's Lightning, or by melting the ecash held at a trusted mint (--from;
                  default: the own mint if its earnings cover it, else the trusted mint with most)

Examples:
  alacarte serve
  alacarte ledger --data /var/lib/alacarte
  alacarte serve --host 0.0.0.0 --port 8402 --data /var/lib/alacarte
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const code = await (await operator()).runOperatorCommand(command, rest, USAGE);
      // The node and its driver are closed: what a request cut off by the drain left under way
      // (an exec's FIFOs, a command's runtime process) would keep the process alive until it
      // ended on its own, up to its timeout. Nothing of it is needed any more.
      await flushed();
      return process.exit(code);
    }
    case 'ledger':
    case 'payout':
      return (await operator()).runOperatorCommand(command, rest, USAGE);
    case 'image':
      return (await images()).runImageCommand(rest);
    case 'mcp':
      return (await import('../agents/stdio-command.js')).runMcpCommand(rest);
    case 'mint':
      if (rest[0] !== 'rotate') {
        process.stderr.write('alacarte: usage: alacarte mint rotate [--data DIR]\n');
        return 2;
      }
      return (await operator()).runOperatorCommand('mint rotate', rest.slice(1), USAGE);
    case 'version':
    case '--version':
    case '-V': {
      // package.json sits two levels above dist/cli/main.js, in a checkout and in an npm install.
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      process.stdout.write(`alacarte ${pkg.version}\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n${(await renter()).RENTER_HELP.renter}\n`);
      return command === undefined ? 1 : 0;
    default: {
      const code = await (await renter()).runRenterCommand(command, rest);
      if (code !== undefined) return code;
      process.stderr.write(`alacarte: unknown command '${command}' — run: alacarte help\n`);
      return 2;
    }
  }
}

/** Resolves once what was written to stdout and stderr so far has been handed to the OS. */
function flushed(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => process.stderr.write('', () => resolve())));
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(failureText(err, process.argv[2]));
    process.exitCode = 1;
  },
);
