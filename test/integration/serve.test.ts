import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServedNode, serveNode } from '../helpers/cli.js';

describe('alacarte serve', () => {
  let node: ServedNode;
  beforeAll(async () => {
    node = await serveNode();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('prints where it listens and which mint it serves', () => {
    expect(node.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(node.output()).toContain(`mint: ${node.url}/mint`);
  });

  it('answers health checks', async () => {
    const res = await fetch(`${node.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  it('answers unknown routes and malformed bodies with 4xx and a stable code', async () => {
    const missing = await fetch(`${node.url}/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not_found' });
    const bad = await fetch(`${node.url}/healthz`, {
      method: 'POST',
      body: '{',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(bad.status).toBeLessThan(500);
  });

  it('keeps its store private to the operator', () => {
    // Others may traverse (sandboxes reach their bundles) but never list or read.
    expect(statSync(node.dataDir).mode & 0o066).toBe(0);
    expect(statSync(join(node.dataDir, 'alacarte.sqlite')).mode & 0o077).toBe(0);
  });

  it('stops cleanly on SIGTERM', async () => {
    const code = await node.stop('SIGTERM');
    expect(code).toBe(0);
    expect(node.output()).toContain('stopped');
  });
});
