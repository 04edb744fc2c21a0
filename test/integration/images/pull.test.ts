import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlacarteError } from '../../../src/core/errors.js';
import type { ComputeDriver, SandboxHandle, SandboxRef } from '../../../src/drivers/compute-driver.js';
import { ImageStore } from '../../../src/drivers/crun/image-store.js';
import { LxdClient } from '../../../src/drivers/lxd/lxd-client.js';
import { LxdDriver } from '../../../src/drivers/lxd/lxd-driver.js';
import { CLI } from '../../helpers/cli.js';
import { type LeaseTestNode, startLeaseNode } from '../../helpers/lease-node.js';
import { waitForShell } from '../../helpers/terminal.js';
import { buildTestLayout, pushToRegistry, startRegistry, TEST_IMAGE } from '../../helpers/test-images.js';
import { newLeaseId, sh, TEST_LIMITS, waitFor } from '../drivers/compute-driver.contract.js';
import { crunSkipReason, findOnPath } from '../drivers/crun-target.js';
import { lxdSkipReason, startLxd } from '../drivers/lxd-target.js';

const missing = ['skopeo', 'umoci', 'docker-registry'].filter((p) => !findOnPath(p));
const skipReason =
  crunSkipReason ??
  (missing.length ? `${missing.join(', ')} not installed (scripts/setup.sh --test)` : undefined);

interface OffersBody {
  images: string[];
  image_details: { name: string; description: string; size_mib: number }[];
}

/**
 * The test image runs as built in `sandbox` (waiting up to `waitMs` for its entrypoint): its
 * entrypoint saw its cmd, commands run in its WorkingDir with its Env, and its files have their
 * owners (root, uid 1000) and set-uid bit.
 */
async function expectRunsAsBuilt(driver: ComputeDriver, sandbox: SandboxRef, waitMs: number): Promise<void> {
  const entrypointSaw = async () => (await sh(driver, sandbox, 'cat /tmp/entrypoint-args')).out;
  expect(await waitFor(async () => (await entrypointSaw()) === 'from-cmd\n', waitMs)).toBe(true);
  const r = await sh(driver, sandbox, 'pwd; echo "$GREETING"; echo "$PATH"; cat hello.txt');
  expect(r.out).toBe(
    `${TEST_IMAGE.workingDir}\n${TEST_IMAGE.env.GREETING}\n${TEST_IMAGE.env.PATH}\n${TEST_IMAGE.file.content}`,
  );
  const st = await sh(driver, sandbox, 'stat -c "%u:%g %a" /app/hello.txt /usr/bin/suid-marker');
  expect(st.out).toBe('0:0 644\n1000:1000 4755\n');
}

if (skipReason) {
  describe.skip(`alacarte image pull: skipped, ${skipReason}`, () => {
    it('needs root, crun, skopeo, umoci and docker-registry', () => {});
  });
} else {
  describe('alacarte image pull from a registry on loopback, list and rm', () => {
    let work: string;
    let registry: Awaited<ReturnType<typeof startRegistry>>;
    let t: LeaseTestNode;
    let ref: string;
    const started: string[] = [];

    /** The built `alacarte image …` command against the node's data directory. */
    const image = (...args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, 'image', ...args, '--data', t.dataDir], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const offers = async () => (await (await fetch(`${t.url}/v1/offers`)).json()) as OffersBody;
    const start = async (extra: { command?: string[]; env?: Record<string, string> } = {}) => {
      const leaseId = newLeaseId();
      started.push(leaseId);
      return t.driver.start(
        { leaseId, image: 'img-1', ...extra },
        TEST_LIMITS,
        new Date(Date.now() + 300_000),
      );
    };

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'alacarte-pull-'));
      chmodSync(work, 0o711);
      const layout = buildTestLayout(join(work, 'build'));
      registry = await startRegistry(join(work, 'registry'));
      ref = `${registry.address}/test/img:1`;
      pushToRegistry(layout, ref);
      const dataDir = join(work, 'data');
      mkdirSync(dataDir);
      const store = new ImageStore(join(dataDir, 'images'), join(dataDir, 'sandboxes'));
      // As `alacarte serve` does: the offered images are the images directory, read per request.
      t = await startLeaseNode({}, dataDir, { images: () => store.list(), driver: { warmLayers: 1 } });
    });

    afterAll(async () => {
      await Promise.allSettled(started.map((leaseId) => t?.driver.stop({ leaseId })));
      await t?.close();
      await registry?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it('refuses a plain-HTTP registry unless told, saying how', () => {
      const r = image('pull', ref);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^alacarte: pulling .* failed/m);
      expect(r.err).toMatch(/--tls-verify=false/);
      // skopeo's own words once, in the error: not also as a progress line above it.
      expect(r.err.split('server gave HTTP response to HTTPS client').length - 1, r.err).toBe(1);
      expect(existsSync(join(t.dataDir, 'images', 'img-1'))).toBe(false);
    });

    it('pulls into a private data directory (a clone under mktemp -d) where sandboxes can reach it', () => {
      const privateDir = join(work, 'private');
      mkdirSync(privateDir, { mode: 0o700 });
      const dataDir = join(privateDir, 'data');
      const r = spawnSync(
        process.execPath,
        [CLI, 'image', 'pull', ref, '--tls-verify=false', '--name', 'priv', '--data', dataDir],
        { encoding: 'utf8', timeout: 120_000 },
      );
      expect(r.status, r.stderr).toBe(0);
      // As `serve` would place it, before the pull: no move later, and no tool works under 0700.
      const images = join(dataDir, 'images');
      expect(lstatSync(images).isSymbolicLink()).toBe(true);
      const placed = readlinkSync(images);
      try {
        expect(placed).toMatch(/^\/var\/lib\/alacarte\/[0-9a-f]{16}\/images$/);
        expect(existsSync(join(placed, 'priv'))).toBe(true);
      } finally {
        rmSync(dirname(placed), { recursive: true, force: true });
      }
    });

    it('pulls the image the test pushed, and the running node offers it at once', async () => {
      const before = await offers();
      expect(before.images).not.toContain('img-1');
      expect(before.image_details.find((i) => i.name === 'busybox')?.description).toMatch(/BusyBox/);
      const r = image('pull', ref, '--tls-verify=false');
      expect(r.err).toMatch(/copying docker:\/\//);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^pulled image img-1: \d+ MiB, from 127\.0\.0\.1:\d+\/test\/img:1$/m);
      const after = await offers();
      expect(after.images).toContain('img-1');
      const detail = after.image_details.find((i) => i.name === 'img-1');
      expect(Object.keys(detail ?? {}).sort()).toEqual(['description', 'name', 'size_mib']);
      expect(detail?.size_mib).toBeGreaterThanOrEqual(1);
      expect(detail?.description).toContain('/test/img:1');
      const listed = image('list');
      expect(listed.out).toMatch(/^img-1\s+\d+ MiB\s+127\.0\.0\.1:\d+\/test\/img:1/m);
      expect(JSON.parse(image('list', '--json').out).images.map((i: { name: string }) => i.name)).toEqual([
        'busybox',
        'img-1',
      ]);
    });

    it("runs the image's entrypoint with its cmd, in its WorkingDir with its Env, its files owned as they were", async () => {
      const a = await start();
      await expectRunsAsBuilt(t.driver, a, 10_000);
      // The hard link still one inode.
      const links = await sh(t.driver, a, 'stat -c %i /app/hello.txt /app/hello-link.txt | uniq | wc -l');
      expect(links.out).toBe('1\n');
      expect(existsSync(join(t.dataDir, 'images/img-1/root/sda'))).toBe(false);
      // An interactive terminal starts there too, with the same environment.
      const session = await t.driver.attach(a, { cols: 100, rows: 30 });
      let screen = '';
      session.stream.on('data', (b: Buffer) => {
        screen += b.toString('utf8');
      });
      await waitForShell(session.stream, () => screen);
      session.stream.write('echo "at $(pwd) $GREETING"; exit\n');
      await session.exited;
      expect(screen).toContain(`at /app ${TEST_IMAGE.env.GREETING}`);
    });

    it.skipIf(lxdSkipReason)(
      'runs it the same way on the LXD driver: its entrypoint with its cmd, in its WorkingDir with its Env, its files owned as they were',
      async () => {
        const daemon = await startLxd('dir');
        const lxd = await LxdDriver.create({
          client: new LxdClient({ socketPath: daemon.socketPath }),
          imagesDir: join(t.dataDir, 'images'),
          runtimeDir: join(work, 'lxd-sandboxes'),
        });
        try {
          const a = await lxd.start(
            { leaseId: newLeaseId(), image: 'img-1' },
            TEST_LIMITS,
            new Date(Date.now() + 300_000),
          );
          await expectRunsAsBuilt(lxd, a, 20_000);
          await lxd.stop(a);
        } finally {
          await lxd.close();
          await daemon.stop();
        }
      },
      240_000,
    );

    it("takes a lease's command in place of the image's cmd, after its entrypoint, and the lease's env over the image's", async () => {
      const a: SandboxHandle = await start({ command: ['one', 'two'], env: { GREETING: 'from the lease' } });
      expect(
        await waitFor(
          async () => (await sh(t.driver, a, 'cat /tmp/entrypoint-args')).out === 'one two\n',
          10_000,
        ),
      ).toBe(true);
      expect((await sh(t.driver, a, 'echo "$GREETING"')).out).toBe('from the lease\n');
    });

    it('refuses to remove an image a lease uses, then removes it once the lease has ended', async () => {
      const a = await start();
      const refused = image('rm', 'img-1');
      expect(refused.code).toBe(1);
      expect(refused.err).toContain(`image img-1 is in use by`);
      expect(refused.err).toContain(a.leaseId);
      expect((await sh(t.driver, a, 'cat hello.txt')).out).toBe(TEST_IMAGE.file.content);
      for (const id of started) await t.driver.stop({ leaseId: id });
      const removed = image('rm', 'img-1');
      expect(removed.code).toBe(0);
      expect(removed.out).toBe('removed image img-1\n');
      expect(image('list').out).not.toContain('img-1');
      expect((await offers()).images).not.toContain('img-1');
      const err = await start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AlacarteError);
      expect((err as AlacarteError).code).toBe('invalid_request');
      expect(image('rm', 'img-1').err).toBe('alacarte: no image img-1 (see alacarte image list)\n');
      // Pulled again under the same name: sandboxes the node made ahead from the removed tree are
      // not handed out; a new lease sees the image's files.
      expect(image('pull', ref, '--tls-verify=false').code).toBe(0);
      const again = await start();
      expect((await sh(t.driver, again, 'cat hello.txt')).out).toBe(TEST_IMAGE.file.content);
    });

    it('answers bad references and names with a sentence, leaving nothing behind', () => {
      const cases: [string[], RegExp][] = [
        [['pull', 'not a ref'], /'not a ref' is not an image reference/],
        [['pull', 'dir:/etc'], /only registry references and oci:DIR\[:TAG\] layouts can be pulled/],
        [['pull', `oci:${join(work, 'nowhere')}:x`], /is not an OCI image layout/],
        [
          ['pull', `${registry.address}/test/absent:1`, '--tls-verify=false'],
          /pulling .*absent:1 failed: .*(manifest unknown|not found)/is,
        ],
        [['pull', ref, '--tls-verify=false', '--name', 'Bad Name'], /'Bad Name' is not an image name/],
        [['pull', ref, '--tls-verify=maybe'], /--tls-verify takes true or false/],
        [['pull', ref, '--tls-verify=false', '--name', 'busybox'], /image busybox exists already/],
        [['rm', '../etc'], /no image \.\.\/etc/],
        [['build', 'ubuntu'], /knows one image: debian/],
      ];
      for (const [args, message] of cases) {
        const r = image(...args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.err, args.join(' ')).toMatch(message);
        expect(r.err).not.toMatch(/\n\s+at /);
      }
      expect(
        image('list')
          .out.trim()
          .split('\n')
          .slice(1)
          .map((l) => l.split(/\s+/)[0]),
      ).toEqual(['busybox', 'img-1']);
    });
  });
}
