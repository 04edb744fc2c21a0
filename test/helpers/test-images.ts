import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { debianRecipe, ensureDebianImage } from '../../src/drivers/crun/debian-image.js';
import { pullImage } from '../../src/drivers/crun/image-pull.js';
import { ImageStore } from '../../src/drivers/crun/image-store.js';
import { freePort } from './ports.js';

/** What the test image says about itself (its OCI config), for tests to compare with. */
export const TEST_IMAGE = {
  env: { GREETING: 'hello from the image', PATH: '/usr/local/bin:/usr/bin:/bin:/sbin' },
  workingDir: '/app',
  /** The entrypoint records its arguments, then stays (a server would). */
  entrypoint: ['/bin/sh', '-c', 'echo "$@" > /tmp/entrypoint-args; exec sleep 100000', 'entry'],
  cmd: ['from-cmd'],
  file: { path: '/app/hello.txt', content: 'hello from a pulled image\n' },
};

/**
 * Builds a small OCI image with umoci, as an image author would: busybox with its applets, a
 * passwd, a file in the working directory, a hard link and a set-uid file, and a config with Env,
 * WorkingDir, Entrypoint and Cmd (without an entrypoint when `entrypoint` is false: a lease's command
 * then runs as given). Returns the layout directory; the image's tag is `test`.
 */
export function buildTestLayout(dir: string, options: { entrypoint?: boolean } = {}): string {
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  const umoci = (...args: string[]) => execFileSync('umoci', args, { stdio: 'pipe' });
  umoci('init', '--layout', layout);
  umoci('new', '--image', `${layout}:test`);
  umoci('unpack', '--image', `${layout}:test`, bundle);
  const root = join(bundle, 'rootfs');
  for (const d of ['bin', 'sbin', 'usr/bin', 'etc', 'app', 'tmp', 'root', 'proc', 'sys', 'dev'])
    mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') symlinkSync('busybox', join(root, 'bin', a));
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nimguser:x:1000:1000::/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(root, TEST_IMAGE.file.path), TEST_IMAGE.file.content);
  // A hard link and a set-uid file: the owner shift must move each inode once and keep the bit.
  linkSync(join(root, TEST_IMAGE.file.path), join(root, 'app/hello-link.txt'));
  writeFileSync(join(root, 'usr/bin/suid-marker'), '#!/bin/sh\n');
  execFileSync('chown', ['1000:1000', join(root, 'usr/bin/suid-marker')]);
  chmodSync(join(root, 'usr/bin/suid-marker'), 0o4755);
  // A node for a host disk, which an installed image must not keep.
  execFileSync('mknod', [join(root, 'root/sda'), 'b', '8', '0']);
  umoci('repack', '--image', `${layout}:test`, bundle);
  const config = [
    ...Object.entries(TEST_IMAGE.env).map(([k, v]) => `--config.env=${k}=${v}`),
    `--config.workingdir=${TEST_IMAGE.workingDir}`,
    ...(options.entrypoint === false ? [] : TEST_IMAGE.entrypoint.map((e) => `--config.entrypoint=${e}`)),
    ...TEST_IMAGE.cmd.map((c) => `--config.cmd=${c}`),
  ];
  umoci('config', '--image', `${layout}:test`, ...config);
  rmSync(bundle, { recursive: true, force: true });
  return layout;
}

/** Debian's docker-registry on a loopback port, with its own config and storage in `dir`. */
export async function startRegistry(dir: string): Promise<{ address: string; stop(): Promise<void> }> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'registry.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'storage')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${address}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://${address}/v2/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 100 || child.exitCode !== null) throw new Error('docker-registry did not start');
    await sleep(100);
  }
  return {
    address,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    },
  };
}

export function pushToRegistry(layout: string, ref: string): void {
  execFileSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:test`, `docker://${ref}`], {
    stdio: 'pipe',
  });
}

/**
 * An images directory holding `pulled`: the test image without its entrypoint, pulled from a local
 * OCI layout with `pullImage` (skopeo + umoci), for suites that need a pulled image but no registry.
 */
export async function pulledImagesDir(base: string): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'alacarte-oci-'));
  try {
    const layout = buildTestLayout(work, { entrypoint: false });
    const imagesDir = join(base, 'pulled-images');
    mkdirSync(imagesDir, { recursive: true, mode: 0o755 });
    const store = new ImageStore(imagesDir, join(base, 'rt'));
    await pullImage(store, {
      ref: `oci:${layout}:test`,
      name: 'pulled',
      idBase: 1_000_000,
      progress: () => {},
    });
    return imagesDir;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * An images directory with the `debian` image, built once per machine and recipe (about half a
 * minute on first use) and shared by every test file and run after that. It is outside the
 * repository so that sandboxes (unprivileged ids) can traverse it wherever the clone is.
 */
export async function debianImagesDir(): Promise<string> {
  const dir = join('/var/tmp', `alacarte-test-images-${debianRecipe()}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const store = new ImageStore(dir, join(dir, '.no-sandboxes'));
  if (!existsSync(join(dir, 'debian'))) {
    process.stderr.write(
      `building the debian image once for the tests, into ${dir} (a few minutes at most)\n`,
    );
    await ensureDebianImage(store, {
      idBase: 1_000_000,
      progress: (line) => process.env.ALACARTE_TEST_LOG && process.stderr.write(`${line}\n`),
    });
  }
  return dir;
}
