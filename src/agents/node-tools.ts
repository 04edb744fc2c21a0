import { Readable } from 'node:stream';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { AlacarteError } from '../core/errors.js';
import type { LeaseFiles } from '../files/lease-files.js';
import {
  bearerOf,
  createLeaseBody,
  execBody,
  execStdin,
  extendBody,
  idempotencyKeyOf,
  parseWith,
} from '../http/lease-schemas.js';
import type { Answer } from '../leases/answer.js';
import type { LeaseService } from '../leases/lease-service.js';
import { contentBytes, readFileBody } from './file-content.js';
import { answerBadArgumentsAsTheApi } from './tool-arguments.js';
import { leaseIdInput, leaseRequestInputs, secondsInput } from './tool-inputs.js';
import { forAgent, guarded, toolAnswer, toolOk } from './tool-results.js';
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

/** Who calls, as the HTTP routes pass it to the lease service. */
export interface McpCaller {
  /** The caller's address (an IPv6 one by its /64), for the rails' per-client bounds; never stored. */
  client: string;
  /** Settles once the answer has left (exec holds its output slot until then, as over HTTP). */
  delivered: Promise<unknown>;
}

/** What the node's MCP tools run on: the very service and files API the HTTP routes call. */
export interface NodeToolsOptions {
  leases: LeaseService;
  files: LeaseFiles;
  /** GET /v1/offers' body (lease-routes.ts offersBody), so both answer alike. */
  offers: () => Promise<Record<string, unknown>>;
  /** Bugs only (never the arguments: they hold payments and credentials). */
  onUnexpected: (err: unknown) => void;
}

const PAYMENT = z
  .string()
  .describe(
    'a Cashu token (cashuB… or cashuA…) of one of the mints the offers tool lists, worth at least the quote, ' +
      'or, where the offers tool lists `payment.x402`, an x402 payment (the base64 PAYMENT-SIGNATURE or ' +
      'X-PAYMENT header value: an EIP-3009 authorization for the quote at the listed rate); change comes ' +
      'back in the result as a Cashu token',
  );

/**
 * The request headers a tool's `payment` stands for: an x402 payment (base64 of a JSON payload
 * naming its `x402Version`) as its header, anything else as `X-Cashu` (where a malformed token is
 * refused as one).
 */
function paymentHeaders(payment: string): Record<string, string> {
  return isX402Payment(payment) ? { 'payment-signature': payment } : { 'x-cashu': payment };
}

/**
 * A 402 as a tool gets it: the price and how to pay in `payment` (a Cashu token, or an x402
 * payment where offered), without the HTTP headers' words and the L402 invoice, which a tool
 * call cannot pay (its credential goes in an Authorization header). Anything else as it is.
 */
async function priced(work: () => Promise<Answer>): Promise<Answer> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof AlacarteError) || err.code !== 'payment_required' || !('amount' in err.details))
      throw err;
    const { l402: _l402, ...details } = err.details;
    const x402 = 'accepts' in details ? ' or an x402 payment' : '';
    const price = `${String(details.amount)} ${String(details.unit ?? '')}`.trim();
    throw new AlacarteError(
      'payment_required',
      `this costs ${price}: pass a Cashu token worth it${x402} as \`payment\``,
      {
        details,
      },
    );
  }
}

function isX402Payment(payment: string): boolean {
  if (payment.length > 64 * 1024 || !/^[A-Za-z0-9+/]+={0,2}$/.test(payment)) return false;
  try {
    const json = JSON.parse(Buffer.from(payment, 'base64').toString('utf8')) as unknown;
    return typeof json === 'object' && json !== null && 'x402Version' in json;
  } catch {
    return false;
  }
}
const CREDENTIAL = z
  .string()
  .max(1024)
  .describe('the lease’s bearer credential (`token` in the rent result)');

/**
 * The node's MCP server (API.md "Agents"): one per request, for its caller. Every tool calls
 * the lease service exactly as its HTTP route does, with the route's own request schemas, so each
 * money rule, bound and error code is the HTTP API's: a refused payment takes nothing, the same
 * token twice is the same lease, an error is a tool error `{"error": code, "message"}`. The node
 * holds no wallet: payments come in as arguments, change and refunds go out in results.
 */
export function nodeMcpServer(options: NodeToolsOptions, caller: McpCaller): McpServer {
  const { client, delivered } = caller;
  const { leases, files } = options;
  const server = new McpServer(
    { name: 'alacarte-node', version: AGENT_TOOLS_VERSION },
    {
      instructions:
        'Rent Linux sandboxes for Cashu ecash, no account: offers → quote → rent (pay with a Cashu token) → ' +
        'exec / write_file / read_file → extend or stop (unused whole seconds come back as a Cashu token). ' +
        'Keep the `token` of the rent result: it is the lease’s only credential.',
    },
  );
  answerBadArgumentsAsTheApi(server, options.onUnexpected);
  const run = (work: () => ReturnType<typeof toolAnswer> | Promise<ReturnType<typeof toolAnswer>>) =>
    guarded(async () => work(), options.onUnexpected);
  const credential = (token: string) => bearerOf(`Bearer ${token}`);

  server.registerTool('offers', offersTool('this node'), () =>
    run(async () => toolOk(await options.offers())),
  );

  server.registerTool('quote', quoteTool, ({ offer, seconds }) =>
    run(() => toolOk(leases.quote(offer, seconds))),
  );

  server.registerTool(
    'rent',
    {
      description:
        'Rent a sandbox, paying with a Cashu token or, where the node takes it, an x402 payment in `payment`. ' +
        'The result holds the lease id, its bearer credential `token` (keep it: only this answer has it) ' +
        'and `change` (a Cashu token, or null). A refused payment takes nothing; the same token again ' +
        'returns the same lease, never a second charge.',
      inputSchema: {
        payment: PAYMENT,
        ...leaseRequestInputs,
        idempotency_key: z.string().optional().describe('optional, as the Idempotency-Key header'),
      },
    },
    ({ payment, idempotency_key, ...request }) =>
      run(async () => {
        const body = parseWith(createLeaseBody, request);
        const key = idempotencyKeyOf(idempotency_key);
        return toolAnswer(await priced(() => leases.create(body, paymentHeaders(payment), key, client)));
      }),
  );

  server.registerTool('status', statusTool(CREDENTIAL), ({ lease_id, token }) =>
    run(async () => toolAnswer(await leases.get(lease_id, credential(token)))),
  );

  server.registerTool(
    'exec',
    execTool(CREDENTIAL, 'at 128 KiB for an agent, 1 MiB over HTTP; `truncated` says so'),
    ({ lease_id, token, ...request }) =>
      run(async () => {
        const body = parseWith(execBody, request);
        const answer = await leases.exec(
          lease_id,
          credential(token),
          {
            command: body.command,
            stdin: execStdin(body),
            encoding: body.encoding,
            timeoutSeconds: body.timeout_seconds,
          },
          delivered,
        );
        return toolAnswer(answer.status === 200 ? { ...answer, body: forAgent(answer.body) } : answer);
      }),
  );

  server.registerTool(
    'write_file',
    writeFileTool(
      CREDENTIAL,
      'Write a file in the sandbox (parent directories made), as the Files API does. The content travels ' +
        'in this request: up to the node’s request body limit (1 MiB by default), and the lease’s disk.',
    ),
    ({ lease_id, token, path, content, encoding, mode }) =>
      run(async () => {
        const bytes = contentBytes(content, encoding);
        const written = await files.write({
          leaseId: lease_id,
          credential: credential(token),
          path,
          mode,
          tar: false,
          body: Readable.from([bytes]),
          contentLength: bytes.length,
        });
        return toolOk(written);
      }),
  );

  server.registerTool(
    'read_file',
    readFileTool(CREDENTIAL, 'the Files API, GET /v1/leases/{id}/files'),
    ({ lease_id, token, path, encoding }) =>
      run(async () => {
        const download = await files.read({ leaseId: lease_id, credential: credential(token), path });
        return toolOk(await readFileBody(download, path, encoding));
      }),
  );

  server.registerTool(
    'extend',
    {
      description:
        'Buy more time for a running lease, paying with a Cashu token or an x402 payment in `payment` (anyone who ' +
        'knows the id may). The result has the new expires_at and `change`. An ended lease: ' +
        'lease_not_running, the token untouched.',
      inputSchema: {
        lease_id: leaseIdInput,
        seconds: secondsInput,
        payment: PAYMENT,
        idempotency_key: z.string().optional().describe('optional, as the Idempotency-Key header'),
      },
    },
    ({ lease_id, seconds, payment, idempotency_key }) =>
      run(async () => {
        const body = parseWith(extendBody, { seconds });
        const key = idempotencyKeyOf(idempotency_key);
        return toolAnswer(
          await priced(() => leases.extend(lease_id, body.seconds, paymentHeaders(payment), client, key)),
        );
      }),
  );

  server.registerTool(
    'stop',
    stopTool(
      CREDENTIAL,
      'Stop a lease now. Unused whole seconds come back as `refund`, a Cashu token (and `refunds`, one per ' +
        'mint paid). Stopping twice gives the same answer, never a second refund.',
    ),
    ({ lease_id, token }) => run(async () => toolAnswer(await leases.stop(lease_id, credential(token)))),
  );

  return server;
}
