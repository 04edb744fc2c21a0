import { z } from 'zod';
import { LEASE_REQUEST_BOUNDS } from '../core/lease-request.js';
import {
  checkStateSchema,
  keysetParamSchema,
  meltQuoteSchema,
  meltSchema,
  mintQuoteSchema,
  mintSchema,
  quoteParamSchema,
  restoreSchema,
  swapSchema,
} from '../mint/http/schemas.js';
import { createLeaseBody, execBody, extendBody, quoteQuery } from './lease-schemas.js';
import { payoutBody } from './operator-routes.js';

/** Who may call an operation: anyone, the holder of a lease's credential, or the operator. */
type Auth = 'none' | 'lease' | 'operator';

/**
 * One operation of the HTTP contract. Request bodies, query strings and path parameters are the
 * very zod schemas the routes parse with, so the published document cannot drift from what the
 * node accepts.
 */
export interface ApiOperation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete' | 'options';
  /** OpenAPI path template, e.g. `/v1/leases/{id}`. */
  path: string;
  tag: 'service' | 'leases' | 'agents' | 'mint' | 'operator' | 'page';
  summary: string;
  description?: string;
  auth?: Auth;
  /** Takes a Cashu token in `X-Cashu` (NUT-24): answers 402 with a NUT-18 request without one. */
  paid?: boolean;
  idempotent?: boolean;
  body?: z.ZodType;
  query?: z.ZodObject;
  params?: z.ZodObject;
  /** Status code → what it means. */
  responses: Record<string, string>;
  /** The shape of a success (2xx JSON) answer, for clients; the node does not parse its own answers. */
  answer?: z.ZodType;
  /** A 2xx answer of another shape than `answer`, by status (e.g. an exec's 202). */
  answers?: Record<string, z.ZodType>;
  /** The answer's media type when it is not JSON. */
  produces?: string;
}

const leaseId = z.object({ id: z.string().max(64).describe('the lease id, `lse_…`') });
const filesQuery = z.object({
  path: z.string().max(4096).describe('an absolute path inside the sandbox'),
});
const filePath = z.object({ path: z.string().describe('a file of the built page') });

// Answers, as API.md describes them (documentation: these shapes are what clients may rely on).
const leaseAnswer = z.object({
  id: z.string(),
  state: z.enum(['pending', 'running', 'expired', 'stopped', 'failed']),
  offer: z.string(),
  image: z.string(),
  created_at: z.string().describe('RFC 3339 UTC'),
  expires_at: z.string().nullable(),
  paid: z.number().int().describe('in `unit`'),
  unit: z.string(),
  ports: z.record(z.string(), z.string()).describe('port → URL'),
  remaining_seconds: z.number().int().optional(),
  ssh: z
    .object({ host: z.string(), port: z.number().int(), user: z.string().describe('the lease id') })
    .optional()
    .describe('the SSH login, when the node serves SSH'),
});
const rentedAnswer = leaseAnswer.extend({
  token: z.string().describe('the bearer credential of the lease: only in the answer to its payment'),
  change: z.string().nullable(),
});
const stoppedAnswer = leaseAnswer.extend({
  refund: z.string().nullable().describe('the first token of `refunds`'),
  refunded: z.number().int(),
  refunds: z.array(z.object({ mint: z.string(), token: z.string().nullable(), amount: z.number().int() })),
});
const execAnswer = z.object({
  exit_code: z.number().int(),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
  encoding: z.literal('base64').optional().describe('stdout and stderr are base64 (asked for)'),
  started: z.literal(false).optional().describe('a background command that could not start'),
});
const execStarted = z.object({
  started: z.literal(true),
  pid: z.number().int().describe("the command's pid, as the sandbox numbers it"),
});
const quoteAnswer = z.object({
  offer: z.string(),
  seconds: z.number().int(),
  amount: z.number().int(),
  unit: z.string(),
});

/** Every route the node serves (a test holds this list to the routes the app registers). */
export const API_OPERATIONS: readonly ApiOperation[] = [
  // ---- service
  {
    method: 'get',
    path: '/healthz',
    tag: 'service',
    summary: 'Liveness',
    responses: { 200: '`{"ok": true}`' },
  },
  {
    method: 'get',
    path: '/metrics',
    tag: 'service',
    summary: 'Prometheus metrics',
    produces: 'text/plain',
    responses: { 200: 'Prometheus text format' },
  },
  {
    method: 'get',
    path: '/openapi.json',
    tag: 'service',
    summary: 'This contract as an OpenAPI 3.1 document',
    responses: { 200: 'the document' },
  },
  {
    method: 'get',
    path: '/docs',
    tag: 'service',
    summary: 'This contract as a readable page',
    produces: 'text/html',
    responses: { 200: 'HTML' },
  },
  // ---- leases
  {
    method: 'get',
    path: '/v1/offers',
    tag: 'leases',
    summary: 'Offers, prices, images and accepted mints',
    description:
      '`payment` has one key per accepted way to pay: `cashu` (its mints and unit) and, when the node ' +
      'takes Lightning too, `l402` (`{"unit": "sat"}`: the 402 then carries an L402 challenge), and when ' +
      'it takes x402 (EVM stablecoins), `x402` (scheme, network, asset and its EIP-712 domain, pay_to, rate, ' +
      "max_timeout_seconds: the 402 then carries x402's PAYMENT-REQUIRED and `accepts`).",
    responses: {
      200: '`{"offers": [...], "images": [...], "payment": {"cashu": {"mints": [...], "unit": "sat"}, "l402": {"unit": "sat"}}}`',
    },
  },
  {
    method: 'get',
    path: '/v1/quote',
    tag: 'leases',
    summary: 'The price of an offer for a duration',
    description: 'Price = ceil(amount_per_hour × seconds / 3600).',
    query: quoteQuery,
    answer: quoteAnswer,
    responses: {
      200: '`{"offer", "seconds", "amount", "unit"}`',
      400: 'unknown offer or seconds out of range',
    },
  },
  {
    method: 'post',
    path: '/v1/leases',
    tag: 'leases',
    summary: 'Rent a sandbox, paying in the same request',
    description:
      'Pay with a Cashu token of an accepted mint in `X-Cashu` (get one with `alacarte wallet send <amount>`, ' +
      'or from any Cashu wallet of the node’s mint). Without it the answer is `402` with a NUT-18 payment ' +
      'request. The same token sent again returns the same lease, never a second charge. A rejected ' +
      'request takes nothing: the token stays unspent.',
    paid: true,
    idempotent: true,
    body: createLeaseBody,
    answer: rentedAnswer,
    responses: {
      201: 'the lease, with its bearer credential `token` (only here) and `change`',
      200: 'the same lease again (a replay of the same payment)',
      400: 'invalid_request, invalid_token, unit_mismatch, mint_not_accepted, insufficient_amount, token_spent, x402_invalid, x402_expired',
      402:
        'payment_required: NUT-18 payment request in the `X-Cashu` header and, beside it, ' +
        '`WWW-Authenticate: L402 macaroon="…", invoice="…"` (body `l402`); over the per-client invoice ' +
        'limits no fresh invoice, and `Retry-After` says when to ask for one again. With x402 on, also ' +
        "`PAYMENT-REQUIRED` (x402 v2) and the body's `x402Version` and `accepts` (v1); x402_settlement_failed: " +
        'the x402 payment could not be settled, no lease',
      409: 'idempotency_conflict',
      413: 'payload_too_large',
      429: 'rate_limited: the same payment is still being processed; send it again (Retry-After)',
      503:
        'no_capacity (token untouched; also while the node has more payments to check than it takes, ' +
        'config mint.curveMaxQueuedProofs, with Retry-After: 1) or start_failed (with a `refund` token)',
    },
  },
  {
    method: 'get',
    path: '/v1/leases/{id}',
    tag: 'leases',
    summary: 'A lease’s state',
    description:
      'A lease the node stopped before its time (its sandbox died) is `stopped`: its refund is handed ' +
      'over by `DELETE`, which answers a stopped lease the same way every time.',
    auth: 'lease',
    params: leaseId,
    answer: leaseAnswer,
    responses: { 200: 'the lease, with `remaining_seconds`', 401: 'unauthorized (also for an unknown id)' },
  },
  {
    method: 'delete',
    path: '/v1/leases/{id}',
    tag: 'leases',
    summary: 'Stop a lease; unused whole seconds come back as ecash',
    auth: 'lease',
    params: leaseId,
    answer: stoppedAnswer,
    responses: {
      200: 'the lease with `state: "stopped"`, `refund`, `refunded` and `refunds` (one token per mint paid)',
      401: 'unauthorized',
      409: 'lease_not_running (it expired)',
    },
  },
  {
    method: 'post',
    path: '/v1/leases/{id}/exec',
    tag: 'leases',
    summary: 'Run a command in the sandbox and wait for it',
    auth: 'lease',
    params: leaseId,
    body: execBody,
    answer: execAnswer,
    answers: { 202: execStarted },
    responses: {
      200: '`{"exit_code", "stdout", "stderr", "truncated"}`; with `background: true`, a command that could not start (`"started": false`, the reason in `stderr`)',
      202: '`{"started": true, "pid"}`: with `background: true`, the command started detached',
      400: `invalid_request (a body the schema refuses, \`stdin\` with \`background\`, the command over ${LEASE_REQUEST_BOUNDS.commandBytes} bytes of UTF-8 in all)`,
      401: 'unauthorized',
      409: 'lease_not_running',
      413: 'payload_too_large (a body over its cap)',
      421: 'lease_elsewhere (replicas with crun: the lease runs on another replica, which serves it)',
      429: 'rate_limited: as many execs of this lease run at once as it may have; Retry-After',
    },
  },
  {
    method: 'post',
    path: '/v1/leases/{id}/extend',
    tag: 'leases',
    summary: 'Buy more time; anyone who knows the id may',
    paid: true,
    idempotent: true,
    params: leaseId,
    body: extendBody,
    answer: leaseAnswer.extend({ change: z.string().nullable() }),
    responses: {
      200: 'the lease with the new `expires_at` and `change`',
      402: 'payment_required (as for POST /v1/leases: Cashu, L402 and, when on, x402 challenges)',
      409: 'lease_not_running (token untouched, or handed back as `refund`); idempotency_conflict: the Idempotency-Key or the payment already bought something else (the new token untouched)',
      429: 'rate_limited: the same payment is still being processed, or the replica holding the sandbox has not confirmed the new deadline yet; send it again (Retry-After)',
      503: 'no_capacity: the node has more payments to check than it takes; replica_unavailable (replicas with crun: the replica holding the sandbox is down); token untouched, Retry-After',
    },
  },
  {
    method: 'get',
    path: '/v1/leases/{id}/attach',
    tag: 'leases',
    summary: 'WebSocket: an interactive terminal in the sandbox',
    description:
      'Upgrade to a WebSocket. Credential as `Authorization: Bearer` or, from a browser, the subprotocol ' +
      '`bearer.<token>`. Binary frames carry terminal bytes; a text frame ' +
      '`{"type": "resize", "cols": 120, "rows": 40}` resizes.',
    auth: 'lease',
    params: leaseId,
    responses: {
      101: 'switching to the WebSocket (closed at once with 1013, try again later, while as many terminals of this lease are open as it may have)',
      401: 'unauthorized',
      409: 'lease_not_running',
      421: 'lease_elsewhere (replicas with crun: the lease runs on another replica, which serves it)',
    },
  },
  {
    method: 'put',
    path: '/v1/leases/{id}/files',
    tag: 'leases',
    summary: 'Write a file into the sandbox (raw body), or unpack a tar archive into a directory',
    description:
      'The body is the file’s bytes, streamed (any content type); with `content-type: application/x-tar` ' +
      'it is a tar archive unpacked into the directory `path`. Parent directories are made; the file ' +
      'is written beside its destination and renamed once complete. Owned by the sandbox’s root; ' +
      'a path never leaves the sandbox’s filesystem (symlinks included).',
    auth: 'lease',
    params: leaseId,
    query: filesQuery.extend({
      mode: z.string().optional().describe('octal permission bits, e.g. 0644 (not with a tar)'),
    }),
    responses: {
      201: '`{"path", "size"}`',
      400: 'invalid_request (relative path, NUL, over 4096 bytes, bad mode, not a tar)',
      401: 'unauthorized',
      409: 'lease_not_running',
      421: 'lease_elsewhere (replicas with crun: the lease runs on another replica, which serves it)',
      413: 'payload_too_large (more than the lease’s disk)',
      429: 'rate_limited: as many transfers of this lease run at once as it may have, or the sandbox runs as many processes as its offer allows; Retry-After',
    },
    answer: z.object({ path: z.string(), size: z.number().int().describe('bytes') }),
  },
  {
    method: 'get',
    path: '/v1/leases/{id}/files',
    tag: 'leases',
    summary: 'Read a file from the sandbox, or a directory as a tar archive',
    auth: 'lease',
    params: leaseId,
    query: filesQuery,
    produces: 'application/octet-stream',
    responses: {
      200: 'the file’s bytes, or for a directory a tar archive (`application/x-tar`)',
      400: 'invalid_request',
      401: 'unauthorized',
      404: 'not_found',
      409: 'lease_not_running',
      421: 'lease_elsewhere (replicas with crun: the lease runs on another replica, which serves it)',
      413: 'payload_too_large (more than the lease’s disk)',
      429: 'rate_limited: as many transfers of this lease run at once as it may have, or the sandbox runs as many processes as its offer allows; Retry-After',
    },
  },
  ...portOperations(),
  // ---- agents
  {
    method: 'post',
    path: '/mcp',
    tag: 'agents',
    summary: 'Model Context Protocol (streamable HTTP, stateless): the lease API as tools for agents',
    description:
      'Tools `offers`, `quote`, `rent`, `exec`, `write_file`, `read_file`, `extend`, `stop`, `status`. The ' +
      'agent passes its payment (a Cashu token) as the `payment` argument of `rent` and `extend`, and the ' +
      'lease’s bearer credential as `token` to the others; change and refunds come back in the results as ' +
      'Cashu tokens. A failure is a tool error whose content is the API’s `{"error", "message"}`. No ' +
      'session: every request stands alone (send `Accept: application/json, text/event-stream`).',
    responses: {
      200: 'a JSON-RPC answer (`application/json`)',
      202: 'a notification, accepted',
      400: 'a body that is not JSON: a JSON-RPC parse error (-32700)',
    },
  },
  // ---- operator
  {
    method: 'get',
    path: '/v1/operator/ledger',
    tag: 'operator',
    summary: 'The books (only when an operator token is configured)',
    auth: 'operator',
    responses: { 200: 'received = charged + refunded + held, and the mint’s figures', 401: 'unauthorized' },
  },
  {
    method: 'post',
    path: '/v1/operator/payout',
    tag: 'operator',
    summary: 'Pay the node’s earnings out to a Lightning invoice (only with an operator token)',
    description:
      'From the own mint’s Lightning (`from: "own"`) or by melting the ecash held at a trusted mint ' +
      '(`from: "<mint url>"`); by default the own mint if its earnings cover the invoice, else the ' +
      'trusted mint holding the most. Never more than the ledger’s `unpaid`.',
    auth: 'operator',
    body: payoutBody,
    responses: {
      200: '`{"paid", "fee", "state": "paid" | "pending", "id", "source"}`',
      400: 'invalid_request, invalid_invoice, amountless_invoice',
      401: 'unauthorized',
      409: 'payout_too_large (with `unpaid`), payout_pending, invoice_already_paid',
      502: 'payout_failed',
    },
  },
  // ---- the mint (Cashu NUTs)
  ...mintOperations(),
  // ---- the page
  {
    method: 'get',
    path: '/',
    tag: 'page',
    summary: 'The web page: rent a sandbox from a browser',
    produces: 'text/html',
    responses: { 200: 'HTML', 404: 'the page is not built on this node' },
  },
  {
    method: 'get',
    path: '/assets/{path}',
    tag: 'page',
    summary: 'The page’s scripts and styles',
    params: filePath,
    produces: '*/*',
    responses: { 200: 'the file', 404: 'no such asset' },
  },
  {
    method: 'get',
    path: '/{path}',
    tag: 'page',
    summary: 'The page’s other files (its icon)',
    params: filePath,
    produces: '*/*',
    responses: { 200: 'the file' },
  },
];

/** A lease's declared ports through the node's listener: every method, to the sandbox's server. */
function portOperations(): ApiOperation[] {
  const params = leaseId.extend({ port: z.string().describe('a port the lease declared, 1 to 65535') });
  const methods = ['get', 'post', 'put', 'patch', 'delete', 'options'] as const;
  return ['/v1/leases/{id}/ports/{port}', '/v1/leases/{id}/ports/{port}/{path}'].flatMap((path) =>
    methods.map(
      (method): ApiOperation => ({
        method,
        path,
        tag: 'leases',
        summary: 'A request (or WebSocket) to the server the lease runs on a declared port',
        description:
          'No credential: the renter shares the URL. The prefix is stripped; the answer is the ' +
          'sandbox server’s own, under `Content-Security-Policy: sandbox`.',
        params: path.endsWith('{path}')
          ? params.extend({ path: z.string().describe('the path on the sandbox’s server') })
          : params,
        produces: '*/*',
        responses: {
          200: 'the server’s answer',
          400: 'invalid_request',
          404: 'not_found (no such lease or port not declared)',
          409: 'lease_not_running',
          421: 'lease_elsewhere (replicas with crun: the lease runs on another replica, which serves it)',
          429: 'rate_limited: the lease holds as many connections as it may; Retry-After',
          502: 'bad_gateway (nothing listens on that port)',
          504: 'gateway_timeout',
        },
      }),
    ),
  );
}

function mintOperations(): ApiOperation[] {
  const nut = (n: string) => `https://github.com/cashubtc/nuts/blob/main/${n}.md`;
  const op = (
    method: 'get' | 'post',
    path: string,
    summary: string,
    spec: string,
    extra: Partial<ApiOperation> = {},
  ): ApiOperation => ({
    method,
    path: `/mint${path}`,
    tag: 'mint',
    summary,
    description: `Cashu ${spec} (${nut(spec)}). Errors: \`{"detail", "code"}\`.`,
    responses: { 200: `as ${spec} says`, 400: 'a NUT error' },
    ...extra,
  });
  const quote = { params: quoteParamSchema };
  return [
    op('get', '/v1/info', 'Mint information', '06'),
    op('get', '/v1/ws', 'WebSocket: JSON-RPC subscriptions to quote and proof states', '17', {
      responses: { 101: 'switching to the WebSocket', 426: 'not a WebSocket request' },
    }),
    op('get', '/v1/keys', 'Public keys of the active keysets', '01'),
    op('get', '/v1/keys/{id}', 'Public keys of one keyset', '01', { params: keysetParamSchema }),
    op('get', '/v1/keysets', 'All keysets', '02'),
    op('post', '/v1/swap', 'Swap proofs for new ones', '03', {
      body: swapSchema,
      responses: {
        200: 'as 03 says',
        400: 'a NUT error',
        503: 'the mint is busy (config mint.curveMaxQueuedProofs); nothing was spent; Retry-After says when to ask again',
      },
    }),
    op('post', '/v1/mint/quote/bolt11', 'A Lightning invoice to buy ecash', '04', {
      body: mintQuoteSchema,
      responses: {
        200: 'as 04 says',
        400: 'a NUT error',
        429: 'too many unpaid quotes from this address, or over all (config mint.unpaidQuotesPerAddress, maxUnpaidQuotes); Retry-After says when to ask again',
      },
    }),
    op('get', '/v1/mint/quote/bolt11/{quote}', 'State of a mint quote', '04', quote),
    op('post', '/v1/mint/bolt11', 'Mint the ecash of a paid quote', '04', {
      body: mintSchema,
      responses: {
        200: 'as 04 says',
        400: 'a NUT error',
        503: 'the mint is busy (config mint.curveMaxQueuedProofs); the quote stays unissued; Retry-After says when to ask again',
      },
    }),
    op('post', '/v1/melt/quote/bolt11', 'Quote paying a Lightning invoice', '05', {
      body: meltQuoteSchema,
      responses: {
        200: 'as 05 says',
        400: 'a NUT error',
        429: 'too many unpaid melt quotes from this address, or over all (config mint.unpaidQuotesPerAddress, maxUnpaidQuotes); Retry-After says when to ask again',
      },
    }),
    op('get', '/v1/melt/quote/bolt11/{quote}', 'State of a melt quote', '05', quote),
    op('post', '/v1/melt/bolt11', 'Pay a Lightning invoice with ecash', '05', { body: meltSchema }),
    op('post', '/v1/checkstate', 'Are these proofs spent?', '07', { body: checkStateSchema }),
    op('post', '/v1/restore', 'Restore signatures from a seed (NUT-09)', '09', { body: restoreSchema }),
    {
      method: 'options',
      path: '/mint/{path}',
      tag: 'mint',
      summary: 'CORS preflight: browser wallets of any origin may use the mint',
      params: filePath,
      responses: { 204: 'allowed' },
    },
  ];
}
