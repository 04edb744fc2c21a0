import { z } from 'zod';
import { API_OPERATIONS, type ApiOperation } from './api-operations.js';

const ERRORS = 'Error answers: `{"error": "<code>", "message": "<text>"}` with a stable code.';

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect): as a client must send it (`input`), or gets it. */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return rest;
}

function parametersOf(op: ApiOperation): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const [where, schema] of [
    ['path', op.params],
    ['query', op.query],
  ] as const) {
    if (!schema) continue;
    const json = jsonSchemaOf(schema) as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, property] of Object.entries(json.properties ?? {})) {
      const { description, ...rest } = property as { description?: string };
      out.push({
        name,
        in: where,
        required: where === 'path' || (json.required ?? []).includes(name),
        ...(description ? { description } : {}),
        schema: rest,
      });
    }
  }
  if (op.paid) {
    out.push({
      name: 'X-Cashu',
      in: 'header',
      required: false,
      description:
        'A Cashu token (cashuB…, NUT-00) worth at least the price, of a mint in /v1/offers: `alacarte wallet send <amount>` prints one.',
      schema: { type: 'string', maxLength: 65536 },
    });
    for (const [name, version] of [
      ['PAYMENT-SIGNATURE', 'v2'],
      ['X-PAYMENT', 'v1'],
    ] as const) {
      out.push({
        name,
        in: 'header',
        required: false,
        description: `An x402 ${version} payment (base64 JSON, scheme exact: an EIP-3009 authorization), where /v1/offers lists \`payment.x402\`.`,
        schema: { type: 'string', maxLength: 16384 },
      });
    }
  }
  if (op.idempotent) {
    out.push({
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      description: 'Bound to the payment and body it first came with.',
      schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
    });
  }
  return out;
}

const ERROR_SCHEMA = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
};

/**
 * The node's HTTP contract as an OpenAPI 3.1 document: every operation of API_OPERATIONS with its
 * parameters and request body as JSON Schema from the routes' own zod schemas.
 */
export function openApiDocument(options: { serverUrl: string; version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of API_OPERATIONS) {
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(op.responses)) {
      const code = Number(status);
      const error = code >= 400 && op.tag !== 'mint' && op.tag !== 'page';
      const type = op.produces ?? 'application/json';
      const shape = code < 300 ? (op.answers?.[status] ?? op.answer) : undefined;
      const schema = error
        ? { $ref: '#/components/schemas/Error' }
        : shape
          ? jsonSchemaOf(shape, 'output')
          : undefined;
      responses[status] = {
        description,
        ...(code === 101 || code === 204 ? {} : { content: { [type]: schema ? { schema } : {} } }),
      };
    }
    const security =
      op.auth === 'lease' ? [{ leaseBearer: [] }] : op.auth === 'operator' ? [{ operatorBearer: [] }] : [];
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      operationId: `${op.method}${op.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      tags: [op.tag],
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      parameters: parametersOf(op),
      ...(op.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: jsonSchemaOf(op.body) } },
            },
          }
        : {}),
      responses,
      security,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'alacarte',
      version: options.version,
      summary: 'Rent a Linux sandbox, paying with Cashu ecash inside the request.',
      description:
        'No account: the payment is the authorisation. Put a Cashu token in `X-Cashu` ' +
        '(`alacarte wallet topup 1000` then `alacarte wallet send 120` prints one), get a lease and its bearer ' +
        `credential, stop it for change. ${ERRORS}`,
    },
    servers: [{ url: options.serverUrl }],
    tags: [
      { name: 'leases', description: 'Rent, use, extend and stop sandboxes' },
      { name: 'agents', description: 'The lease API as Model Context Protocol tools' },
      { name: 'mint', description: 'The node’s own Cashu mint (NUTs 01–09)' },
      { name: 'operator', description: 'For the operator' },
      { name: 'service', description: 'Health, metrics and this contract' },
      { name: 'page', description: 'The web page' },
    ],
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: {
        leaseBearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'The `token` from the answer that created the lease',
        },
        operatorBearer: { type: 'http', scheme: 'bearer', description: 'The operator token of the config' },
      },
    },
  };
}
