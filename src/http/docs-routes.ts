import type { FastifyPluginAsync } from 'fastify';
import { API_OPERATIONS, type ApiOperation } from './api-operations.js';
import { jsonSchemaOf, openApiDocument } from './openapi.js';

/** The HTTP contract's version (API.md "version 1"); additions keep it. */
const API_VERSION = '1';

/**
 * `GET /openapi.json` (the contract as OpenAPI 3.1) and `GET /docs` (the same as a plain HTML
 * page made here, with no script and nothing from another host). Both are built once, on first
 * request, for the node's public URL.
 */
export function docsRoutes(options: { publicUrl: () => string }): FastifyPluginAsync {
  return async (app) => {
    let json: string | undefined;
    let html: string | undefined;
    app.get('/openapi.json', async (_request, reply) => {
      json ??= JSON.stringify(openApiDocument({ serverUrl: options.publicUrl(), version: API_VERSION }));
      reply.header('content-type', 'application/json; charset=utf-8');
      reply.header('access-control-allow-origin', '*');
      return reply.send(json);
    });
    app.get('/docs', async (_request, reply) => {
      html ??= docsPage(options.publicUrl());
      reply.header('content-type', 'text/html; charset=utf-8');
      reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'");
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
      return reply.send(html);
    });
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** Prose with `code` spans, as the operation table writes it. */
const prose = (s: string) => escapeHtml(s).replace(/`([^`]+)`/g, '<code>$1</code>');

function operationHtml(op: ApiOperation): string {
  const id = `${op.method}-${op.path}`.replace(/[^a-z0-9]+/gi, '-');
  const parts = [
    `<section id="${id}"><h3><span class="m">${op.method.toUpperCase()}</span> <code>${prose(op.path)}</code></h3>`,
    `<p>${prose(op.summary)}.${op.auth === 'lease' ? ' Needs <code>Authorization: Bearer &lt;lease token&gt;</code>.' : ''}${op.auth === 'operator' ? ' Needs the operator token as Bearer.' : ''}${op.paid ? ' Paid: a Cashu token in <code>X-Cashu</code> (or, where the node takes them, L402 or x402).' : ''}</p>`,
  ];
  if (op.description) parts.push(`<p>${prose(op.description)}</p>`);
  if (op.query) parts.push(`<p>Query:</p><pre>${escapeHtml(pretty(jsonSchemaOf(op.query)))}</pre>`);
  if (op.body)
    parts.push(`<p>Body (JSON Schema):</p><pre>${escapeHtml(pretty(jsonSchemaOf(op.body)))}</pre>`);
  parts.push(
    '<ul>',
    ...Object.entries(op.responses).map(([status, text]) => `<li><b>${status}</b> ${prose(text)}</li>`),
    '</ul></section>',
  );
  return parts.join('\n');
}

function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** The contract as one HTML page, for people (machines read /openapi.json). */
export function docsPage(baseUrl: string): string {
  const tags = ['leases', 'agents', 'mint', 'operator', 'service', 'page'] as const;
  const sections = tags.map((tag) => {
    const ops = API_OPERATIONS.filter((op) => op.tag === tag);
    return `<h2>${tag}</h2>\n${ops.map(operationHtml).join('\n')}`;
  });
  const base = escapeHtml(baseUrl);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>alacarte HTTP API</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;color:#1b1b1b;background:#fff}
pre{background:#f4f4f4;padding:.6rem;overflow:auto;font-size:.85rem}
code{font-size:.92em}.m{display:inline-block;min-width:4.5rem;font-family:monospace;color:#0b5}
section{border-top:1px solid #ddd;margin-top:1rem}
@media (prefers-color-scheme: dark){body{background:#111;color:#eee}pre{background:#222}section{border-color:#333}}
</style></head><body>
<h1>alacarte HTTP API, version ${API_VERSION}</h1>
<p>The same contract as an OpenAPI 3.1 document: <a href="/openapi.json"><code>/openapi.json</code></a>.
All bodies are JSON; amounts are whole numbers in the named unit; times are RFC 3339 UTC.
Every error answer is <code>{"error": "&lt;code&gt;", "message": "&lt;text&gt;"}</code> with a stable code, and
nothing malformed ever gets a 5xx.</p>
<h2>Paying with curl</h2>
<p>Get ecash into the <code>alacarte</code> wallet and print a token worth the price:</p>
<pre>alacarte wallet topup 1000          # pay the Lightning invoice (a test node pays it itself)
curl -s '${base}/v1/quote?offer=small&amp;seconds=7200'   # the price: "amount"
TOKEN=$(alacarte wallet send 120)   # a Cashu token (cashuB…) worth 120 sat
curl -s -X POST ${base}/v1/leases -H "X-Cashu: $TOKEN" \\
  -H 'content-type: application/json' -d '{"offer":"small","seconds":7200,"image":"busybox"}'</pre>
<p>Any Cashu wallet of the node's mint (<code>${base}/mint</code>) works too. The answer's <code>token</code> is the
lease's bearer credential; <code>DELETE /v1/leases/{id}</code> with it stops the lease and returns the unused
time as a token (<code>alacarte wallet receive TOKEN</code> takes it back).</p>
${sections.join('\n')}
</body></html>
`;
}
