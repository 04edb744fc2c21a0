import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

/** What the page may load: everything from the node itself, nothing from anywhere else. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

// The build output is a few dozen small files; these bounds keep a misconfigured directory
// (say, `/`) from being read into memory at start-up.
const MAX_FILES = 500;
const MAX_TOTAL_BYTES = 32 * 1024 * 1024;

interface WebFile {
  body: Buffer;
  /** The body gzipped once at start-up, when that makes it smaller (text: the JS bundle, CSS, HTML). */
  gzipped?: Buffer;
  type: string;
  etag: string;
}

export interface WebRoutesOptions {
  /** The Vite build output (index.html, assets/); when absent the page answers 404 with a hint. */
  dir: string | undefined;
}

/**
 * The built page from the Vite output directory, in memory, on a fixed map from URL path to file
 * made at start-up: a request names a key of the map or gets a 404, so no path from outside ever
 * reaches the file system.
 */
export function webRoutes(options: WebRoutesOptions): FastifyPluginAsync {
  return async (app) => {
    const files = options.dir ? loadFiles(options.dir) : new Map<string, WebFile>();
    const index = files.get('index.html');

    app.get('/', async (request, reply) => {
      if (!index) {
        return reply.status(404).send({
          error: 'not_found',
          message: 'the web page is not built on this node: run `npm run build`',
        });
      }
      pageHeaders(reply, request);
      reply.header('cache-control', 'no-cache');
      return sendFile(request, reply, index);
    });

    app.get<{ Params: { '*': string } }>('/assets/*', async (request, reply) => {
      const file = files.get(`assets/${request.params['*']}`);
      if (!file) return reply.status(404).send({ error: 'not_found', message: 'no such asset' });
      commonHeaders(reply);
      // Vite puts a content hash in every asset name: a name never changes its content.
      reply.header('cache-control', 'public, max-age=31536000, immutable');
      return sendFile(request, reply, file);
    });

    // Files Vite copies as they are (web/public, e.g. the icon) live at the top level.
    for (const [name, file] of files) {
      if (name === 'index.html' || name.includes('/')) continue;
      app.get(`/${name}`, async (request, reply) => {
        commonHeaders(reply);
        reply.header('cache-control', 'public, max-age=3600');
        return sendFile(request, reply, file);
      });
    }
  };
}

/** Where the build puts the page: dist/web beside the compiled code, or the repo's dist/web from src. */
export function defaultWebDir(): string | undefined {
  const candidates = [
    fileURLToPath(new URL('../web/', import.meta.url)),
    fileURLToPath(new URL('../../dist/web/', import.meta.url)),
  ];
  return candidates.find((dir) => existsSync(join(dir, 'index.html')));
}

/**
 * The page's Content-Security-Policy: scripts, fonts, images and connections only to this node.
 * Styles allow 'unsafe-inline' because xterm.js writes its own <style> elements and style
 * attributes at run time; CSS cannot send anything anywhere since every fetch it could make
 * (img-src, font-src) is locked to 'self' too.
 */
export function contentSecurityPolicy(host: string | undefined): string {
  // 'self' covers ws:/wss: to the same host in CSP 3; naming them keeps older engines working,
  // and only for this host (a Host header that is not a plain host[:port] gets no such entry).
  const socket = host && /^[A-Za-z0-9.\-[\]:]{1,255}$/.test(host) ? ` ws://${host} wss://${host}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self'",
    "font-src 'self'",
    `connect-src 'self'${socket}`,
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function pageHeaders(reply: FastifyReply, request: FastifyRequest): void {
  commonHeaders(reply);
  reply.header('content-security-policy', contentSecurityPolicy(request.headers.host));
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
  reply.header('cross-origin-opener-policy', 'same-origin');
  reply.header('permissions-policy', 'camera=(), microphone=(), geolocation=()');
}

function commonHeaders(reply: FastifyReply): void {
  reply.header('x-content-type-options', 'nosniff');
  reply.header('cross-origin-resource-policy', 'same-origin');
}

function sendFile(request: FastifyRequest, reply: FastifyReply, file: WebFile): FastifyReply {
  reply.header('content-type', file.type);
  reply.header('etag', file.etag);
  reply.header('vary', 'accept-encoding');
  if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
  if (file.gzipped && acceptsGzip(request.headers['accept-encoding'])) {
    reply.header('content-encoding', 'gzip');
    return reply.send(file.gzipped);
  }
  return reply.send(file.body);
}

function acceptsGzip(header: string | undefined): boolean {
  if (typeof header !== 'string' || header.length > 1024) return false;
  return header.split(',').some((part) => {
    const [name, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return (name === 'gzip' || name === '*') && (q === undefined || Number(q.slice(2)) > 0);
  });
}

function loadFiles(root: string): Map<string, WebFile> {
  const files = new Map<string, WebFile>();
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(path);
        continue;
      }
      const type = CONTENT_TYPES[extname(entry.name).toLowerCase()];
      if (!entry.isFile() || !type) continue;
      total += statSync(path).size;
      if (files.size >= MAX_FILES || total > MAX_TOTAL_BYTES) {
        throw new Error(`web directory ${root} is too large to serve from memory`);
      }
      const body = readFileSync(path);
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
      const gzipped = gzipSync(body, { level: 9 });
      files.set(relative(root, path).split(sep).join('/'), {
        body,
        type,
        etag,
        ...(gzipped.length < body.length * 0.9 ? { gzipped } : {}),
      });
    }
  };
  walk(root);
  return files;
}
