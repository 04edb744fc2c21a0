import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { AlacarteError } from '../core/errors.js';
import type { Answer } from '../leases/answer.js';

/**
 * What an agent's tool call answers, in both MCP servers (the node's `POST /mcp` and the renter's
 * `alacarte mcp`): the JSON body as text (what a model reads) and as `structuredContent` (what a
 * program reads). A failure is an MCP tool error (`isError: true`) whose body is the HTTP API's
 * error body, `{"error": "<stable code>", "message": "…"}` plus its extra fields (a `refund`
 * token of `start_failed`), never a protocol error or a crash.
 */
export function toolOk(body: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(body) }], structuredContent: body };
}

/**
 * Characters of stdout and of stderr each that an exec's tool result carries: the HTTP API's 1 MiB
 * each, as JSON (a NUL byte is six characters), once as text and once as structuredContent, made
 * one message the stock MCP client's stdio reader refuses (it then closes the connection, and the
 * agent loses its session and its leases' book). Beyond, an agent reads a file (read_file).
 */
export const AGENT_OUTPUT_CHARS = 128 * 1024; // a multiple of 4: base64 is cut at a whole group

/**
 * An exec's answer body as an agent gets it: `stdout` and `stderr` cut to AGENT_OUTPUT_CHARS each
 * (base64 thus at a whole group of four), `truncated` then true; any other body as it is.
 */
export function forAgent(body: Record<string, unknown>): Record<string, unknown> {
  const cut = (value: unknown) => {
    if (typeof value !== 'string' || value.length <= AGENT_OUTPUT_CHARS) return value;
    // Never half of a surrogate pair (an emoji cut in two is not text: JSON would carry a lone
    // surrogate). Base64 has none, and its bound is a multiple of 4.
    const end = /[\uD800-\uDBFF]/.test(value[AGENT_OUTPUT_CHARS - 1] ?? '')
      ? AGENT_OUTPUT_CHARS - 1
      : AGENT_OUTPUT_CHARS;
    return value.slice(0, end);
  };
  const stdout = cut(body.stdout);
  const stderr = cut(body.stderr);
  if (stdout === body.stdout && stderr === body.stderr) return body;
  return { ...body, stdout, stderr, truncated: true };
}

/** A tool error with a stable code (API.md "Errors") and a human message. */
export function toolError(
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
): CallToolResult {
  const body = { ...extra, error: code, message };
  return { content: [{ type: 'text', text: JSON.stringify(body) }], structuredContent: body, isError: true };
}

/** A lease-service answer as a tool result: 2xx is a success, anything else the error it carries. */
export function toolAnswer(answer: Answer): CallToolResult {
  if (answer.status >= 200 && answer.status < 300) return toolOk(answer.body);
  const { error, message, ...extra } = answer.body;
  return toolError(
    typeof error === 'string' ? error : 'internal',
    typeof message === 'string' ? message : `the node answered ${answer.status}`,
    extra,
  );
}

/**
 * Runs a tool's work and turns what it throws into a tool error: an AlacarteError keeps its code,
 * message and extra fields, exactly as http/errors.ts answers it; anything else is a bug, reported
 * through `onUnexpected` (never with the arguments: they hold tokens) and answered `internal`.
 */
export async function guarded(
  run: () => Promise<CallToolResult>,
  onUnexpected: (err: unknown) => void,
): Promise<CallToolResult> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof AlacarteError) return toolError(err.code, err.message, { ...err.details });
    onUnexpected(err);
    return toolError('internal', 'internal error');
  }
}
