import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { AlacarteNode } from '../../../src/node.js';
import { serveNode } from '../../helpers/cli.js';
import { startMintNode } from '../../helpers/lease-node.js';

/**
 * Issue 9, part 6: a trusted mint that lacks what the node relies on (NUT-07 checkstate, NUT-09
 * restore) is refused at start-up with a message naming the mint and the missing NUTs. The mints
 * here are small loopback servers answering /v1/info as a mint without those NUTs would.
 */
let server: Server;
let base: string;
/** What each path answers: status and JSON body. */
const answers = new Map<string, { status: number; body: unknown }>();
const dirs: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const answer = answers.get(req.url ?? '') ?? { status: 404, body: { detail: 'not found', code: 10000 } };
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fake mint at `${base}/${name}` whose /v1/info lists these NUTs. */
function fakeMint(name: string, nuts: Record<string, unknown>, status = 200): string {
  answers.set(`/${name}/v1/info`, { status, body: { name, version: 'fake/0', nuts } });
  return `${base}/${name}`;
}

function startWith(trustedMints: string[]): Promise<AlacarteNode> {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-nuts-'));
  dirs.push(dir);
  const config = loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent', trustedMints } });
  return AlacarteNode.create(config);
}

const base4 = { '4': { methods: [], disabled: false }, '5': { methods: [], disabled: false } };

describe('trusted mints are checked at start-up', () => {
  it('refuses a mint without NUT-07 and NUT-09, naming it and both NUTs', async () => {
    const url = fakeMint('bare', base4);
    const err = await startWith([url]).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain(url);
    expect(err?.message).toContain('NUT-07');
    expect(err?.message).toContain('NUT-09');
  });

  it('names only what is missing: NUT-09 here, with NUT-07 said to be unsupported elsewhere', async () => {
    const only7 = fakeMint('only7', { ...base4, '7': { supported: true } });
    await expect(startWith([only7])).rejects.toThrow(/only7 does not support NUT-09 \(restore\),/);
    const off = fakeMint('off', { ...base4, '7': { supported: false }, '9': { supported: true } });
    await expect(startWith([off])).rejects.toThrow(/off does not support NUT-07 \(checkstate\),/);
  });

  it('refuses a mint whose info cannot be read', async () => {
    const broken = fakeMint('broken', {}, 500);
    await expect(startWith([broken])).rejects.toThrow(/broken: its \/v1\/info could not be read/);
  });

  it('starts with a mint that supports both (another alacarte node)', async () => {
    const other = await startMintNode();
    try {
      const good = fakeMint('good', { ...base4, '7': { supported: true }, '9': { supported: true } });
      const node = await startWith([other.mintUrl, good]);
      await node.close();
    } finally {
      await other.close();
    }
  });

  it('`alacarte serve` exits with the message instead of listening (needs npm run build)', async () => {
    const url = fakeMint('cli', base4);
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-nuts-cli-'));
    dirs.push(dir);
    // The driver's preflight wants the data directory's parent traversable by the sandboxes' ids.
    chmodSync(dir, 0o711);
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ trustedMints: [url] }));
    const err = await serveNode({ args: ['--config', file], dataDir: join(dir, 'data') }).then(
      async (node) => {
        await node.stop();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/exited before listening/);
    expect(err?.message).toContain(`${url} does not support NUT-07 (checkstate) and NUT-09 (restore)`);
  });
});
