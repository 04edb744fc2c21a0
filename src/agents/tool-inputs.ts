import { z } from 'zod';

/**
 * The input shapes of the agent tools, shared by the node's `POST /mcp` and the renter's
 * `alacarte mcp`. They give types and descriptions (what an agent reads in `tools/list`); the
 * bounds are the HTTP API's own schemas (http/lease-schemas.ts), applied by each tool to the
 * request it builds, so a value over a bound gets the same `invalid_request` and message as over
 * HTTP. Strings an agent could make huge are bounded here as well: the MCP request itself is
 * bounded by the node's body limit, the renter's side by these.
 */

const MAX_TEXT = 16 * 1024 * 1024;

export const leaseIdInput = z.string().max(128).describe('the lease id, `lse_…` (from rent)');
export const offerInput = z.string().max(64).describe('an offer id from the offers tool, e.g. `small`');
export const secondsInput = z
  .number()
  .int()
  .describe('whole seconds, within the offer’s min_seconds and max_seconds');

/** The lease fields of rent: what POST /v1/leases takes in its body. */
export const leaseRequestInputs = {
  offer: offerInput,
  seconds: secondsInput,
  image: z.string().max(128).default('busybox').describe('an image from the offers tool (default busybox)'),
  command: z
    .array(z.string().max(MAX_TEXT))
    .max(4096)
    .optional()
    .describe('the sandbox’s main process (default: the image’s own)'),
  env: z.record(z.string().max(256), z.string().max(MAX_TEXT)).optional().describe('environment variables'),
  ports: z.array(z.number().int()).max(64).optional().describe('ports the sandbox serves, reachable by URL'),
};

/** exec's fields beside the lease: what POST /v1/leases/{id}/exec takes. */
export const execInputs = {
  command: z.array(z.string().max(MAX_TEXT)).max(4096).describe('argv, e.g. ["sh", "-c", "echo hi"]'),
  stdin: z.string().max(MAX_TEXT).optional().describe('text given to the command on stdin'),
  timeout_seconds: z
    .number()
    .int()
    .optional()
    .describe('kill the command after this long (default 30, at most 3600)'),
};

export const pathInput = z.string().max(8192).describe('an absolute path inside the sandbox');
export const encodingInput = z
  .enum(['utf8', 'base64'])
  .default('utf8')
  .describe('utf8 (text) or base64 (bytes, RFC 4648 padded)');

export const writeFileInputs = {
  path: pathInput,
  content: z.string().max(MAX_TEXT).describe('the file’s content, in `encoding`'),
  encoding: encodingInput,
  mode: z.string().max(8).optional().describe('octal permission bits, e.g. 0755 (default 0644)'),
};

export const readFileInputs = { path: pathInput, encoding: encodingInput };

/** Canonical padded base64 (RFC 4648 section 4), as the exec API takes it. */
export function isBase64(text: string): boolean {
  return Buffer.from(text, 'base64').toString('base64') === text;
}
