import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type ServedNode, serveNode, tempDir } from '../helpers/cli.js';

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
    expect(node.output()).toMatch(/^store: SQLite \(.*\/alacarte\.sqlite\)$/m);
    // A fresh data directory has no debian image: the command to build it names this node's
    // directory (typed elsewhere, without it, it would build into ./data).
    expect(node.output()).toMatch(
      /^image debian is not built yet: alacarte image build debian --data \/\S+ \(npm start does\)$/m,
    );
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
    // The data directory is free again: its lock went with the node.
    expect(existsSync(join(node.dataDir, 'serve.lock'))).toBe(false);
  });
});

describe('alacarte serve on a data directory another node uses', () => {
  let first: ServedNode | undefined;
  let after: ServedNode | undefined;
  afterAll(async () => {
    await after?.stop();
    await first?.stop('SIGKILL');
  });

  it('refuses the second node, naming the directory, the pid and --data; the first keeps answering', async () => {
    first = await serveNode();
    const r = spawnSync(
      process.execPath,
      [CLI, 'serve', '--port', '0', '--ssh-port', 'off', '--data', first.dataDir],
      { encoding: 'utf8', env: { ...process.env, ALACARTE_LOG_LEVEL: 'warn' }, timeout: 60_000 },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `alacarte: data directory ${first.dataDir} is in use by another alacarte node (pid ${first.process.pid},`,
    );
    expect(r.stderr).toContain('give this one its own directory with --data DIR');
    expect(r.stdout).not.toContain('listening on');
    const res = await fetch(`${first.url}/healthz`);
    expect(res.status).toBe(200);
    // The refused start left the first node's lock alone.
    expect(readFileSync(join(first.dataDir, 'serve.lock'), 'utf8')).toMatch(
      new RegExp(`^${first.process.pid} `),
    );
  });

  it('starts on the directory after the first was killed with SIGKILL (its lock is stale)', async () => {
    if (!first) throw new Error('the first node did not start');
    await first.stop('SIGKILL');
    expect(existsSync(join(first.dataDir, 'serve.lock'))).toBe(true);
    after = await serveNode({ dataDir: first.dataDir });
    const res = await fetch(`${after.url}/healthz`);
    expect(res.status).toBe(200);
    expect(readFileSync(join(after.dataDir, 'serve.lock'), 'utf8')).toMatch(
      new RegExp(`^${after.process.pid} `),
    );
  });
});

describe('alacarte serve on a port that is taken', () => {
  it('says which address is in use and which flag picks another, and exits 1', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const args = ['serve', '--port', String(port), '--ssh-port', 'off', '--data', tempDir('data')];
      const r = spawnSync(process.execPath, [CLI, ...args], {
        encoding: 'utf8',
        env: { ...process.env, ALACARTE_LOG_LEVEL: 'warn' },
        timeout: 60_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        `alacarte: 127.0.0.1:${port} is in use (another alacarte node?): stop it, or choose another --port`,
      );
      expect(r.stderr).not.toContain('EADDRINUSE');
      // Said before the images and sandboxes are prepared, not after (minutes on a first start).
      expect(r.stderr).not.toContain('preparing images');
      expect(r.stdout).not.toContain('image debian is not built yet');
    } finally {
      taken.close();
    }
  });

  it('says so for a taken SSH port too, naming --ssh-port, before preparing anything', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const args = ['serve', '--port', '0', '--ssh-port', String(port), '--data', tempDir('data')];
      const r = spawnSync(process.execPath, [CLI, ...args], {
        encoding: 'utf8',
        env: { ...process.env, ALACARTE_LOG_LEVEL: 'warn' },
        timeout: 60_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `alacarte: 127.0.0.1:${port} is in use (another alacarte node?): stop it, or choose another --ssh-port\n`,
      );
    } finally {
      taken.close();
    }
  });
});

describe('alacarte serve given a port or host it cannot use', () => {
  const serve = (args: string[]) =>
    spawnSync(process.execPath, [CLI, 'serve', '--data', tempDir('data'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, ALACARTE_LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });

  it('names the flag and what was typed for a port that is not a number', () => {
    for (const [args, line] of [
      [
        ['--port', 'abc'],
        "alacarte: --port wants a port number from 1 to 65535 (0: any free one), got 'abc'\n",
      ],
      [
        ['--port', '0', '--ssh-port', '70000'],
        "alacarte: --ssh-port wants a port number from 1 to 65535 (0: any free one), got '70000'\n",
      ],
    ] as const) {
      const r = serve([...args]);
      expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 1, stderr: line });
    }
  });

  it('says a --host that is not one of the machine addresses is not, before preparing anything', () => {
    // 198.51.100.0/24 is a documentation range: no machine running the tests has it.
    const r = serve(['--host', '198.51.100.7', '--port', '0', '--ssh-port', 'off']);
    expect(r.status).toBe(1);
    expect(r.stderr).not.toContain('preparing images');
    expect(r.stderr).toBe(
      'alacarte: 198.51.100.7 is not an address of this machine: give --host one of its own (127.0.0.1, or 0.0.0.0 for all)\n',
    );
  });
});

describe('alacarte serve behind a public URL', () => {
  it('says where it listens and, apart, the public URL clients are given', async () => {
    const node = await serveNode({ env: { ALACARTE_PUBLIC_URL: 'https://alacarte.example.com' } });
    try {
      expect(node.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
      expect(node.output()).toContain(
        'public URL: https://alacarte.example.com\nmint: https://alacarte.example.com/mint\n',
      );
    } finally {
      await node.stop();
    }
  });
});

describe('alacarte serve with an offer whose disk does not fit its memory (crun)', () => {
  it('warns, naming the offer and the disk_mib that fits', async () => {
    const dataDir = tempDir('data');
    const configFile = join(dataDir, 'test-config.json');
    const offer = (id: string, memory_mib: number, disk_mib: number) => ({
      id,
      vcpu: 1,
      memory_mib,
      pids: 64,
      disk_mib,
      price: { amount_per_hour: 60, unit: 'sat' },
    });
    writeFileSync(
      configFile,
      JSON.stringify({ offers: [offer('roomy', 512, 1024), offer('fits', 512, 256)] }),
    );
    const node = await serveNode({ dataDir, args: ['--config', configFile] });
    try {
      expect(node.output()).toContain(
        "alacarte: warning: offer roomy has disk_mib 1024 over half its memory_mib 512; crun holds the disk in the sandbox's memory",
      );
      expect(node.output()).toContain('lower disk_mib to 256 or raise memory_mib');
      expect(node.output()).not.toContain('offer fits');
    } finally {
      await node.stop();
    }
  });
});
