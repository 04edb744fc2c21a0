import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { AlacarteError } from '../core/errors.js';
import { Alacarte, type FetchLike } from '../sdk/client.js';
import {
  AlacarteApiError,
  AlacarteNetworkError,
  InsufficientFundsError,
  PriceLimitError,
  UnknownLeaseError,
  WalletOperationError,
} from '../sdk/errors.js';
import { LeaseBook } from '../sdk/lease-book.js';
import { WalletBusyError } from '../wallet/file-lock.js';
import { LocalWallet } from '../wallet/local-wallet.js';
import { WalletFileError } from '../wallet/wallet-store.js';
import { contentBytes, readFileBody } from './file-content.js';
import type { SpendCap } from './spend-cap.js';
import { answerBadArgumentsAsTheApi } from './tool-arguments.js';
import { leaseIdInput, leaseRequestInputs, secondsInput } from './tool-inputs.js';
import { forAgent, toolError, toolOk } from './tool-results.js';
import {
  AGENT_TOOLS_VERSION,
  execTool,
  offersTool,
  quoteTool,
  readFileTool,
  statusTool,
  stopTool,
  writeFileTool,
} from './tool-specs.js';

export interface RenterToolsOptions {
  /** The node, e.g. http://127.0.0.1:8402. */
  url: string;
  /** The renter's home: wallet.json and leases.json ($ALACARTE_HOME). */
  home: string;
  cap: SpendCap;
  fetch?: FetchLike;
  /** How long a call waits for the wallet while another `alacarte` command holds it (ms). */
  lockWaitMs?: number;
  /** Bugs only (never the arguments). */
  onUnexpected: (err: unknown) => void;
}

const CREDENTIAL = z
  .string()
  .max(1024)
  .optional()
  .describe(
    'the lease’s credential; not needed for leases rented from this machine (kept in its lease book)',
  );

/**
 * The renter's MCP server (`alacarte mcp`, API.md "Agents"): the node's tools, paid from the local
 * wallet. An agent never sees ecash or credentials: rent and extend pay within the spend cap
 * (a call over it is refused before anything is paid, as `spend_cap`), change and refunds go back
 * into the wallet, credentials stay in the lease book. Errors are tool errors
 * `{"error": code, "message"}`: the node's codes as it answered them, and `spend_cap`,
 * `insufficient_funds`, `unknown_lease`, `node_unreachable`, `wallet_error` (busy: another
 * `alacarte` command holds it) from this side.
 */
export function renterMcpServer(options: RenterToolsOptions): McpServer {
  const { cap } = options;
  const server = new McpServer(
    { name: 'alacarte', version: AGENT_TOOLS_VERSION },
    {
      instructions:
        'Rent Linux sandboxes from an alacarte node, paid from the local Cashu wallet within a spend cap: ' +
        'offers → quote → rent → exec / write_file / read_file → extend or stop (the unused time is refunded ' +
        'into the wallet). Leases are named by their id; their credentials stay on this machine.',
    },
  );
  answerBadArgumentsAsTheApi(server, options.onUnexpected);
  const book = new LeaseBook(options.home);
  const plain = () => new Alacarte({ url: options.url, leases: book, fetch: options.fetch });
  const run = async (work: () => Promise<CallToolResult>): Promise<CallToolResult> => {
    try {
      return await work();
    } catch (err) {
      return errorResult(err, cap, options.onUnexpected);
    }
  };
  /**
   * Work with the wallet open (and locked) for its length, one call at a time; a paid call's
   * outflow is booked on the cap before the answer shows the balance and what is left of the cap.
   */
  const withWallet = (work: (sdk: Alacarte) => Promise<Record<string, unknown>>, paid: boolean) =>
    cap.exclusive(async () => {
      const wallet = LocalWallet.open({ home: options.home, lockWaitMs: options.lockWaitMs ?? 30_000 });
      try {
        const sdk = new Alacarte({ url: options.url, wallet, leases: book, fetch: options.fetch });
        // What an interrupted payment left (a crash, a lost answer) is settled first, as every
        // `alacarte` command does, and before the measure: it is not this call's spending.
        await sdk.recover().catch(() => undefined);
        const before = wallet.balance().value;
        let body: Record<string, unknown>;
        try {
          body = await work(sdk);
        } finally {
          if (paid) cap.record(before - wallet.balance().value);
        }
        const left = cap.total - cap.spent;
        return toolOk({
          ...body,
          balance: Number(wallet.balance().value),
          spent: Number(cap.spent),
          cap_left: Number(left > 0n ? left : 0n),
        });
      } finally {
        wallet.close();
      }
    });

  server.registerTool('offers', offersTool('the node'), () =>
    run(async () => toolOk({ ...(await plain().offers()) })),
  );

  server.registerTool('quote', quoteTool, ({ offer, seconds }) =>
    run(async () => toolOk({ ...(await plain().quote(offer, seconds)) })),
  );

  server.registerTool(
    'rent',
    {
      description:
        `Rent a sandbox, paid from the local wallet (Cashu) within the spend cap: at most ${cap.perCall} sat a ` +
        `call and ${cap.total} sat in all for this session; over it the call is refused and nothing is paid. ` +
        'Change goes back into the wallet. The result is the lease (its credential stays on this machine) ' +
        'with the wallet balance and what is left of the cap.',
      inputSchema: leaseRequestInputs,
    },
    (request) =>
      run(() =>
        withWallet(async (sdk) => {
          const lease = await sdk.rent({ ...request, maxAmount: Number(cap.allowance()) });
          const { token: _credential, change: _change, ...shown } = lease;
          return shown;
        }, true),
      ),
  );

  server.registerTool(
    'extend',
    {
      description:
        'Buy more time for a running lease, paid from the local wallet within the same spend cap as rent. ' +
        'The result has the new expires_at.',
      inputSchema: { lease_id: leaseIdInput, seconds: secondsInput },
    },
    ({ lease_id, seconds }) =>
      run(() =>
        withWallet(async (sdk) => {
          const lease = await sdk.extend(lease_id, seconds, { maxAmount: Number(cap.allowance()) });
          const { change: _change, ...shown } = lease as unknown as Record<string, unknown>;
          return shown;
        }, true),
      ),
  );

  server.registerTool('status', statusTool(CREDENTIAL), ({ lease_id, token }) =>
    run(async () => toolOk({ ...(await plain().status(lease_id, { token })) })),
  );

  server.registerTool(
    'exec',
    execTool(CREDENTIAL, 'at 128 KiB here, by the node at 1 MiB by default; `truncated` says so'),
    ({ lease_id, token, command, stdin, timeout_seconds }) =>
      run(async () =>
        toolOk(
          forAgent({
            ...(await plain().exec(lease_id, command, { stdin, timeoutSeconds: timeout_seconds, token })),
          }),
        ),
      ),
  );

  server.registerTool(
    'write_file',
    writeFileTool(
      CREDENTIAL,
      'Write a file in the sandbox (parent directories made), through the node’s Files API.',
    ),
    ({ lease_id, token, path, content, encoding, mode }) =>
      run(async () => {
        const bytes = contentBytes(content, encoding);
        return toolOk(await plain().files.write(lease_id, path, bytes, { mode, token }));
      }),
  );

  server.registerTool(
    'read_file',
    readFileTool(CREDENTIAL, 'alacarte cp'),
    ({ lease_id, token, path, encoding }) =>
      run(async () => {
        const download = await plain().files.read(lease_id, path, { token });
        return toolOk(await readFileBody(download, path, encoding));
      }),
  );

  server.registerTool(
    'stop',
    stopTool(
      CREDENTIAL,
      'Stop a lease now; the unused whole seconds are refunded into the local wallet. The result has ' +
        '`refunded` and the new balance.',
    ),
    ({ lease_id, token }) =>
      run(() =>
        withWallet(async (sdk) => {
          const stopped = await sdk.stop(lease_id, { token });
          const {
            refund: _refund,
            refunds: _refunds,
            ...shown
          } = stopped as unknown as Record<string, unknown>;
          return shown;
        }, false),
      ),
  );

  return server;
}

/** What a failed call answers the agent: the node's error as it came, or this side's reason. */
function errorResult(err: unknown, cap: SpendCap, onUnexpected: (err: unknown) => void): CallToolResult {
  if (err instanceof PriceLimitError) {
    // Name the limit that blocks: the per-call one, or what is left of the total.
    const unit = err.unit;
    const limit =
      BigInt(err.asked) > cap.perCall
        ? `this session may pay at most ${cap.perCall} ${unit} a call (--max-per-call)`
        : `this session has ${cap.total - cap.spent > 0n ? cap.total - cap.spent : 0n} ${unit} left of its ` +
          `${cap.total} ${unit} in all (--max-total; ${cap.spent} ${unit} spent)`;
    return toolError('spend_cap', `the node asks ${err.asked} ${unit}; ${limit}: nothing was paid`, {
      asked: err.asked,
      allowed: err.limit,
      spent: Number(cap.spent),
    });
  }
  if (err instanceof AlacarteApiError) {
    // Ecash in an error (a failed start's refund) is in the wallet already: the agent needs none.
    const { error: _c, message: _m, refund: _r, refunds: _rs, change: _ch, token: _t, ...extra } = err.body;
    return toolError(err.code, err.message, extra);
  }
  if (err instanceof AlacarteError) return toolError(err.code, err.message);
  if (err instanceof InsufficientFundsError) return toolError('insufficient_funds', err.message);
  if (err instanceof UnknownLeaseError) return toolError('unknown_lease', err.message);
  if (err instanceof AlacarteNetworkError) return toolError('node_unreachable', err.message);
  if (err instanceof WalletOperationError || err instanceof WalletBusyError || err instanceof WalletFileError)
    return toolError('wallet_error', err.message);
  onUnexpected(err);
  return toolError('internal', 'internal error');
}
