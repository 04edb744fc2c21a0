import type { McpServer, RegisteredTool } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CallToolRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { z } from 'zod';
import { parseWith } from '../http/lease-schemas.js';
import { guarded, toolError } from './tool-results.js';

type Handler = (...args: unknown[]) => CallToolResult | Promise<CallToolResult>;

/**
 * Makes `server` answer a tool call whose arguments do not fit the tool's input schema (a number
 * sent as a string, a missing field) as the HTTP API answers such a body: a tool error
 * `{"error": "invalid_request", "message": "seconds: …"}` with parseWith's words, instead of the
 * MCP SDK's own text (its error code and a dump of the schema library's issues, no stable code).
 * An unknown tool is `invalid_request` too. Call it before the tools are registered: it records
 * each one as registered and takes over `tools/call`, which then validates and runs the tool's
 * own callback (what the SDK's dispatch does for plain tools; these servers have no task tools
 * and no output schemas). `tools/list` stays the SDK's.
 */
export function answerBadArgumentsAsTheApi(server: McpServer, onUnexpected: (err: unknown) => void): void {
  const tools = new Map<string, RegisteredTool>();
  const register = server.registerTool.bind(server) as (...args: unknown[]) => RegisteredTool;
  const takeOverCalls = () =>
    // The SDK installs its own tools/call handler at the first registration; this replaces it,
    // and later registrations leave it in place.
    server.server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const { name } = request.params;
      const tool = tools.get(name);
      if (!tool?.enabled)
        return toolError('invalid_request', `no tool '${name.slice(0, 64)}': see tools/list`);
      const handler = tool.handler as unknown as Handler;
      return guarded(async () => {
        if (!tool.inputSchema) return handler(extra);
        const args = parseWith(tool.inputSchema as unknown as z.ZodType, request.params.arguments ?? {});
        return handler(args, extra);
      }, onUnexpected);
    });
  server.registerTool = ((...args: unknown[]) => {
    const tool = register(...args);
    tools.set(args[0] as string, tool);
    if (tools.size === 1) takeOverCalls();
    return tool;
  }) as McpServer['registerTool'];
}
