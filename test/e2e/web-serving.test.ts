import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { contentSecurityPolicy, webRoutes } from '../../src/http/web-routes.js';
import { silentLogger } from '../../src/log.js';

// How the node serves the built page: a fixed map of files made at start-up, content types,
// caching, the CSP, and nothing outside the build directory.

let dir: string;
let app: FastifyInstance;
let bare: FastifyInstance;

async function appFor(webDir: string | undefined): Promise<FastifyInstance> {
  return buildApp({
    logger: silentLogger(),
    bodyLimitBytes: 1024 * 1024,
    plugins: [{ prefix: '', plugin: webRoutes({ dir: webDir }) }],
  });
}

beforeAll(async () => {
  const root = mkdtempSync(join(tmpdir(), 'alacarte-web-'));
  dir = join(root, 'web');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>page</title>');
  writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
  writeFileSync(join(dir, 'assets', 'index-abc123.css'), 'body{}');
  writeFileSync(
    join(dir, 'assets', 'big-abc123.js'),
    `const words = ${JSON.stringify('lorem ipsum '.repeat(2000))};`,
  );
  writeFileSync(join(dir, 'favicon.svg'), '<svg/>');
  writeFileSync(join(dir, 'notes.unknown'), 'not a web file');
  // A secret beside the build directory: no URL may reach it.
  writeFileSync(join(root, 'secret.txt'), 'do not serve');
  app = await appFor(dir);
  bare = await appFor(undefined);
});

afterAll(async () => {
  await app?.close();
  await bare?.close();
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

describe('serving the web page', () => {
  it('serves the page at / with a strict CSP, no caching of the HTML, and no cookies', async () => {
    const res = await app.inject({ url: '/', headers: { host: '127.0.0.1:8402' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<title>page</title>');
    expect(res.headers['cache-control']).toBe('no-cache');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self' ws://127.0.0.1:8402 wss://127.0.0.1:8402");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/https?:\/\/|\*/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('serves hashed assets with their type and a long immutable cache, and answers 304 to its etag', async () => {
    const js = await app.inject({ url: '/assets/index-abc123.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(js.body).toBe('console.log(1)');
    const css = await app.inject({ url: '/assets/index-abc123.css' });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    const again = await app.inject({
      url: '/assets/index-abc123.js',
      headers: { 'if-none-match': String(js.headers.etag) },
    });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const icon = await app.inject({ url: '/favicon.svg' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['content-type']).toBe('image/svg+xml');
  });

  it('gzips what compresses to clients that accept it, and only to them', async () => {
    const plain = await app.inject({ url: '/assets/big-abc123.js' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toBe('accept-encoding');
    const zipped = await app.inject({
      url: '/assets/big-abc123.js',
      headers: { 'accept-encoding': 'br, gzip;q=0.8' },
    });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.rawPayload.length).toBeLessThan(plain.rawPayload.length / 10);
    expect(gunzipSync(zipped.rawPayload).toString()).toBe(plain.body);
    const refused = await app.inject({
      url: '/assets/big-abc123.js',
      headers: { 'accept-encoding': 'gzip;q=0' },
    });
    expect(refused.headers['content-encoding']).toBeUndefined();
    // Tiny files are not worth it and go as they are.
    const tiny = await app.inject({ url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'gzip' } });
    expect(tiny.headers['content-encoding']).toBeUndefined();
    expect(tiny.body).toBe('console.log(1)');
  });

  it('answers 404 to anything not in the build, however the path is spelled', async () => {
    for (const url of [
      '/assets/missing.js',
      '/assets/../index.html',
      '/assets/%2e%2e/secret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/assets//etc/passwd',
      '/assets/index-abc123.js%00.html',
      '/secret.txt',
      '/notes.unknown',
      '/index.html/',
    ]) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, url).toBeLessThan(500);
      expect(res.body, url).not.toContain('do not serve');
    }
  });

  it('says how to build the page when a node has none', async () => {
    const res = await bare.inject({ url: '/' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      error: 'not_found',
      message: expect.stringContaining('npm run build'),
    });
  });

  it('names no WebSocket host in the CSP for a Host header that is not a plain host', () => {
    expect(contentSecurityPolicy('evil.example; script-src *')).toContain("connect-src 'self';");
    expect(contentSecurityPolicy(undefined)).toContain("connect-src 'self';");
  });
});
