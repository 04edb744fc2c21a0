import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { toErrorAnswer } from '../http/errors.js';
import { sourceOf } from '../ssh/ssh-server.js';
import { type NodeToolsOptions, nodeMcpServer } from './node-tools.js';

/**
 * `POST /mcp` (API.md "Agents"): the Model Context Protocol over streamable HTTP, in stateless
 * mode: every request gets its own server and transport, no session id, nothing kept between
 * requests (the tools carry everything: payments and lease credentials are arguments), so any
 * replica can answer any request. Answers are plain JSON (`enableJsonResponse`), not an SSE
 * stream: every tool answers once. The JSON body went through the node's parser and body limit
 * before it gets here. A GET (a client asking for a server-to-client stream) is `405` with `Allow:
 * POST` (the node's answer for another method at a route), which MCP clients take as "no such
 * stream"; a stateless server has no session to DELETE.
 */
export function mcpRoutes(options: NodeToolsOptions): FastifyPluginAsync {
  return async (app) => {
    // A body that is not JSON is a JSON-RPC parse error (-32700), as the MCP SDK answers one it
    // parses itself; the rest (too large, wrong type) keeps the API's answer.
    app.setErrorHandler((err: FastifyError, request, reply) => {
      if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY')
        return reply.status(400).send({
          jsonrpc: '2.0',
          error: { code: -32700, message: 'Parse error: the body is not JSON' },
          id: null,
        });
      const { status, body, headers } = toErrorAnswer(err);
      if (status >= 500) request.log.error({ err, route: '/mcp' }, 'unexpected error');
      return reply.status(status).headers(headers).send(body);
    });
    app.post('/mcp', async (request, reply) => {
      const delivered = new Promise((resolve) => {
        reply.raw.once('finish', resolve);
        reply.raw.once('close', resolve);
      });
      const server = nodeMcpServer(options, { client: sourceOf(request.ip), delivered });
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      // The transport writes the answer itself, on the raw response.
      reply.hijack();
      reply.raw.once('close', () => {
        void transport.close();
        void server.close();
      });
      try {
        await server.connect(transport);
        await transport.handleRequest(request.raw, reply.raw, request.body);
      } catch (err) {
        options.onUnexpected(err);
        if (!reply.raw.headersSent) {
          reply.raw.writeHead(500, { 'content-type': 'application/json' });
          reply.raw.end(
            JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null }),
          );
        }
      }
    });
  };
}
