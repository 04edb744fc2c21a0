import { parseArgs } from 'node:util';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { defaultHome } from '../wallet/local-wallet.js';
import { renterMcpServer } from './renter-tools.js';
import { SpendCap } from './spend-cap.js';

const DEFAULT_URL = 'http://127.0.0.1:8402';

export const MCP_HELP = `alacarte mcp — the node's tools for an AI agent, over stdio (Model Context Protocol)

Usage:
  alacarte mcp --max-total SAT [--max-per-call SAT] [--url URL]

Serves the tools offers, quote, rent, exec, write_file, read_file, extend, stop, status on
stdin/stdout for an MCP client (Claude Desktop, an IDE, an agent framework), talking to the node
at --url (default $ALACARTE_URL or ${DEFAULT_URL}). rent and extend pay from the local wallet
($ALACARTE_HOME); change and refunds go back into it; lease credentials stay in its lease book.

Spend cap (what the agent may spend, counted as what leaves the wallet):
  --max-total SAT     the most all paid calls of this session may pay together (required)
  --max-per-call SAT  the most one rent or extend may pay (default: --max-total)
A call over the cap is refused with the tool error spend_cap; nothing is paid. The total counts
from the start of the process; refunds do not give room back.
`;

/** `alacarte mcp`: resolves with an exit code on a usage error, else once stdio is served. */
export async function runMcpCommand(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      options: {
        url: { type: 'string' },
        'max-total': { type: 'string' },
        'max-per-call': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(MCP_HELP);
    return 0;
  }
  const url = (
    typeof values.url === 'string' ? values.url : (process.env.ALACARTE_URL ?? DEFAULT_URL)
  ).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(url)) return usage(`not an http(s) URL: ${url}`);
  if (values['max-total'] === undefined)
    return usage('give the spend cap: --max-total SAT (and optionally --max-per-call SAT)');
  const total = satArg(values['max-total']);
  if (total === undefined)
    return usage(`--max-total wants a whole amount of sat, got '${values['max-total']}'`);
  const perCall = values['max-per-call'] === undefined ? total : satArg(values['max-per-call']);
  if (perCall === undefined)
    return usage(`--max-per-call wants a whole amount of sat, got '${values['max-per-call']}'`);
  if (perCall > total)
    return usage(
      `--max-per-call (${perCall} sat) is more than --max-total (${total} sat): lower it or leave it out`,
    );

  const home = defaultHome();
  const server = renterMcpServer({
    url,
    home,
    cap: new SpendCap(perCall, total),
    // stdout is the protocol's: a bug is told on stderr, without arguments (they may hold paths, commands).
    onUnexpected: (err) => process.stderr.write(`alacarte mcp: unexpected error: ${String(err)}\n`),
  });
  await server.connect(new StdioServerTransport());
  process.stderr.write(
    `alacarte mcp: serving on stdio for ${url}; spend cap ${perCall} sat a call, ${total} sat in all\n`,
  );
  return 0;
}

function satArg(value: unknown): bigint | undefined {
  return typeof value === 'string' && /^[0-9]{1,15}$/.test(value) ? BigInt(value) : undefined;
}

function usage(message: string): number {
  process.stderr.write(`alacarte mcp: ${message}\nrun: alacarte mcp --help\n`);
  return 2;
}
