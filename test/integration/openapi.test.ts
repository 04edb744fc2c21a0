import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registeredRoutes } from '../../src/http/app.js';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../helpers/lease-node.js';

/**
 * The node publishes its own HTTP contract: /openapi.json lists every route the app registers,
 * with request bodies as JSON Schema made from the routes' own zod schemas, and /docs shows it.
 */
let t: LeaseTestNode;
type Doc = {
  openapi: string;
  servers: Array<{ url: string }>;
  paths: Record<
    string,
    Record<
      string,
      {
        parameters: Array<{ name: string; in: string }>;
        requestBody?: { content: { 'application/json': { schema: object } } };
        responses: Record<string, { content?: Record<string, { schema?: object }> }>;
      }
    >
  >;
};
let doc: Doc;

beforeAll(async () => {
  // With an operator token, so the operator's routes are registered too.
  t = await startLeaseNode({ operatorToken: 'op-secret-for-the-test-0123456789' });
  const res = await fetch(`${t.url}/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = (await res.json()) as Doc;
}, 60_000);
afterAll(async () => {
  await t?.close();
});

/** Fastify's `/v1/leases/:id` and `/assets/*` as OpenAPI templates `/v1/leases/{id}`, `/assets/{path}`. */
function template(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{path}');
}

/** Does a documented template (`/{path}`) cover a concrete route (`/favicon.svg`)? */
function covers(documented: string, route: string): boolean {
  const pattern = documented.replace(/[.?+^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+');
  return new RegExp(`^${pattern}$`).test(route);
}

describe('the published HTTP contract', () => {
  it('is OpenAPI 3.1 naming the node as its server', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.servers).toEqual([{ url: t.url }]);
  });

  it('documents every route the app registers, and nothing it does not', () => {
    // HEAD routes are the ones Fastify adds for every GET on its own.
    const routes = registeredRoutes(t.node.app).filter((r) => r.method !== 'HEAD');
    expect(routes.length).toBeGreaterThan(20);
    const missing = routes.filter(({ method, url }) => {
      const path = template(url);
      const m = method.toLowerCase();
      if (doc.paths[path]?.[m]) return false;
      // A file of the page at the top level (its icon) falls under `/{path}`.
      return !(m === 'get' && doc.paths['/{path}']?.get && covers('/{path}', path));
    });
    expect(missing).toEqual([]);
    const registered = new Set(routes.map((r) => `${r.method.toLowerCase()} ${template(r.url)}`));
    const extra = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .map((m) => `${m} ${path}`)
        // `/{path}` stands for whichever files the built page has at the top level.
        .filter((key) => key !== 'get /{path}' && !registered.has(key)),
    );
    expect(extra).toEqual([]);
    for (const key of [
      'post /v1/leases',
      'delete /v1/leases/{id}',
      'post /mint/v1/swap',
      'get /openapi.json',
    ]) {
      expect(registered.has(key)).toBe(true);
    }
  });

  it('gives request bodies as valid JSON Schema that accepts what the node accepts', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const bodies: Record<string, object> = {};
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const schema = op.requestBody?.content['application/json'].schema;
        if (!schema) continue;
        expect(ajv.validateSchema(schema), `${method} ${path}: ${ajv.errorsText()}`).toBe(true);
        bodies[`${method} ${path}`] = schema;
      }
    }
    expect(Object.keys(bodies).sort()).toEqual(
      [
        'post /v1/leases',
        'post /v1/leases/{id}/exec',
        'post /v1/leases/{id}/extend',
        'post /mint/v1/swap',
        'post /mint/v1/mint/quote/bolt11',
        'post /mint/v1/mint/bolt11',
        'post /mint/v1/melt/quote/bolt11',
        'post /mint/v1/melt/bolt11',
        'post /mint/v1/checkstate',
        'post /mint/v1/restore',
        'post /v1/operator/payout',
      ].sort(),
    );
    const create = ajv.compile(bodies['post /v1/leases'] as object);
    expect(create({ offer: 'small', seconds: 7200, image: 'busybox', command: ['sh'], ports: [8080] })).toBe(
      true,
    );
    expect(create({ offer: 'small', seconds: 0, image: 'busybox' })).toBe(false);
    expect(create({ offer: 'small', seconds: 60, image: 'Busy/Box' })).toBe(false);
    expect(create({ offer: 'small', seconds: 60, image: 'busybox', surprise: 1 })).toBe(false);
    const exec = ajv.compile(bodies['post /v1/leases/{id}/exec'] as object);
    expect(exec({ command: ['uname', '-a'] })).toBe(true);
    expect(exec({ command: 'uname -a' })).toBe(false);
    const quote = doc.paths['/v1/quote']?.get?.parameters.map((p) => `${p.in}:${p.name}`);
    expect(quote?.sort()).toEqual(['query:offer', 'query:seconds']);
    const paid = doc.paths['/v1/leases']?.post?.parameters.map((p) => `${p.in}:${p.name}`);
    expect(paid).toContain('header:X-Cashu');
  });

  it('describes the answers the node really gives: rent, status, exec, stop', async () => {
    const ajv = new Ajv2020({ strict: false });
    const answer = (path: string, method: string, status: string) => {
      const schema = doc.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema;
      if (!schema) throw new Error(`no answer schema for ${method} ${path} ${status}`);
      return ajv.compile(schema);
    };
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
    const { token } = await tokenOf(wallet, t.mintUrl, proofs, 60);
    const leases = `${t.url}/v1/leases`;
    const rented = await postJson(
      leases,
      { offer: 'small', seconds: 3600, image: 'busybox' },
      { 'x-cashu': token },
    );
    expect(rented.status).toBe(201);
    const check = (validate: ReturnType<typeof answer>, body: unknown) => {
      expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
    };
    check(answer('/v1/leases', 'post', '201'), rented.body);
    const auth = { authorization: `Bearer ${rented.body.token as string}` };
    const id = rented.body.id as string;
    const status = await fetch(`${leases}/${id}`, { headers: auth });
    check(answer('/v1/leases/{id}', 'get', '200'), await status.json());
    const exec = await postJson(`${leases}/${id}/exec`, { command: ['echo', 'hi'] }, auth);
    check(answer('/v1/leases/{id}/exec', 'post', '200'), exec.body);
    // With background: true, a 202 of its own shape, which the 200's schema does not take.
    const started = await postJson(
      `${leases}/${id}/exec`,
      { command: ['sleep', '5'], background: true },
      auth,
    );
    expect(started.status).toBe(202);
    check(answer('/v1/leases/{id}/exec', 'post', '202'), started.body);
    expect(answer('/v1/leases/{id}/exec', 'post', '200')(started.body)).toBe(false);
    const unstarted = await postJson(
      `${leases}/${id}/exec`,
      { command: ['cd', '/'], background: true },
      auth,
    );
    expect(unstarted.status).toBe(200);
    check(answer('/v1/leases/{id}/exec', 'post', '200'), unstarted.body);
    expect(unstarted.body).toMatchObject({ started: false, exit_code: 127 });
    const documented = Object.keys(doc.paths['/v1/leases/{id}/exec']?.post?.responses ?? {});
    expect(documented).toEqual(expect.arrayContaining(['200', '202', '400', '401', '409', '413', '429']));
    const stopped = await postJson(`${leases}/${id}`, undefined, auth, 'DELETE');
    check(answer('/v1/leases/{id}', 'delete', '200'), stopped.body);
    // The schemas are not empty shells: a stop answer is not a rent answer.
    expect(answer('/v1/leases', 'post', '201')(stopped.body)).toBe(false);
  });

  it('the node answers what the document says: a body the schema refuses is a 400', async () => {
    const res = await fetch(`${t.url}/v1/leases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ offer: 'small', seconds: 60, image: 'busybox', surprise: 1 }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
  });

  it('is readable at /docs, from the node alone, with how a curl user gets a token', async () => {
    const res = await fetch(`${t.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain('alacarte wallet send 120');
    expect(html).toContain('<a href="/openapi.json">');
    expect(html).toContain('<span class="m">POST</span> <code>/v1/leases</code>');
    expect(html).toContain('<span class="m">DELETE</span> <code>/v1/leases/{id}</code>');
    // No script, and nothing from another host.
    expect(html).not.toMatch(/<script|https?:\/\/(?!github\.com\/cashubtc)(?!127\.0\.0\.1)/);
  });
});
