import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { expect } from 'vitest';

/**
 * What the agent tests share about MCP tool calls (the node's `POST /mcp` and the renter's
 * `alacarte mcp`, API.md "Agents"), whichever transport the official client speaks.
 */

/** A tool result as the official client hands it back. */
export type ToolResult = {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content: Array<{ type: string; text?: string }>;
};

/** The nine tools both servers list, sorted. */
export const AGENT_TOOL_NAMES = [
  'exec',
  'extend',
  'offers',
  'quote',
  'read_file',
  'rent',
  'status',
  'stop',
  'write_file',
].sort();

/** Calls tool `name` with `args` through `client`; a tool error comes back as a result, not thrown. */
export async function callTool(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<ToolResult> {
  return (await client.callTool({ name, arguments: args })) as ToolResult;
}

/** The JSON a model reads in the result's text, which must match the structured copy. */
export function bodyOf(result: ToolResult): Record<string, unknown> {
  const text = result.content[0]?.text ?? '';
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(result.structuredContent).toEqual(body);
  return body;
}
