import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, loadConfig } from '../config.js';
import { ensureDebianImage } from '../drivers/crun/debian-image.js';
import { placeMountedDirs } from '../drivers/crun/host-dirs.js';
import { pullImage } from '../drivers/crun/image-pull.js';
import { ImageError, ImageStore } from '../drivers/crun/image-store.js';
import { LxdClient } from '../drivers/lxd/lxd-client.js';
import { lxdEndpoint } from '../drivers/lxd/lxd-from-config.js';
import { lxdImageAlias, removeLxdImage } from '../drivers/lxd/lxd-image.js';
import { prepareDataDir } from '../node.js';
import { openDatabase } from '../store/database.js';

/** Root inside every sandbox is this host id: the crun driver's default (crun-options.ts). */
const ID_BASE = 1_000_000;

export const IMAGE_USAGE = `Usage:
  alacarte image build debian [--if-missing] [--data DIR] [--config FILE]
  alacarte image pull REF [--name NAME] [--tls-verify=false] [--data DIR] [--config FILE]
  alacarte image list [--json] [--data DIR] [--config FILE]
  alacarte image rm NAME [--data DIR] [--config FILE]

  build debian    Debian 12 with python3, pip, venv, curl, git, ca-certificates and apt, from
                  Debian's own packages (mmdebstrap; one to three minutes, its progress shown).
                  --if-missing: nothing to do when it is there.
  pull REF        any OCI image: a registry reference (docker.io/library/python:3.12-slim,
                  127.0.0.1:5000/team/tool:1, docker://…) or a local OCI layout (oci:DIR[:TAG]).
                  Its Env, WorkingDir, Entrypoint and Cmd are honoured. --name: the name renters
                  ask for (default from REF, e.g. python-3.12-slim). --tls-verify=false: a
                  registry without TLS. A running node offers it at once.
  list            the images, with size and source
  rm NAME         removes an image (on the LXD driver, LXD's copy too); refused while a lease uses it

Images live in <data>/images/<name> and are shared read-only by every sandbox made from them.
These commands need root (image files are owned by the sandboxes' host ids).
`;

/**
 * The node's leases, from its store, that run or are being started on image `name`: crun's
 * runtime directory alone does not show the leases of an LXD driver or of another replica. A data
 * directory without a store (no node has run on it) has none.
 */
async function leasesOnImage(config: Config, name: string): Promise<string[]> {
  const location = config.store.url ?? join(config.dataDir, 'alacarte.sqlite');
  if (config.store.url === undefined && !existsSync(location)) return [];
  const db = await openDatabase(location);
  try {
    const rows = await db
      .selectFrom('leases')
      .select('id')
      .where('image', '=', name)
      .where('state', 'in', ['pending', 'running'])
      .execute();
    return rows.map((r) => r.id);
  } finally {
    await db.destroy();
  }
}

/** `alacarte image …`: build, pull, list and remove the images a node offers. */
export async function runImageCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      data: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      name: { type: 'string' },
      'tls-verify': { type: 'string' },
      'if-missing': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help || sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    (sub === undefined ? process.stderr : process.stdout).write(IMAGE_USAGE);
    return sub === undefined ? 2 : 0;
  }
  const config = loadConfig({ file: values.config, env: process.env, flags: { dataDir: values.data } });
  const store = new ImageStore(join(config.dataDir, 'images'), join(config.dataDir, 'sandboxes'));
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const needRoot = () => {
    if (process.getuid?.() !== 0)
      throw new ImageError('image commands need root: image files are owned by the sandboxes’ host ids');
    // As `serve` does, and before building: in a private data directory (a clone under mktemp -d)
    // the images then go straight where sandboxes, and apt's _apt user, can reach them.
    prepareDataDir(config.dataDir);
    placeMountedDirs(config.dataDir);
  };
  try {
    switch (sub) {
      case 'build': {
        if (positionals.length !== 1 || positionals[0] !== 'debian')
          throw new ImageError('alacarte image build knows one image: debian');
        needRoot();
        store.removeLeftovers();
        if (store.has('debian') && !values['if-missing'])
          throw new ImageError('image debian exists already: remove it first (alacarte image rm debian)');
        const built = await ensureDebianImage(store, { idBase: ID_BASE, progress });
        process.stdout.write(
          built
            ? `built image debian: ${built.size_mib} MiB in ${store.imagesDir}/debian\n`
            : `image debian is there already (${store.imagesDir}/debian)\n`,
        );
        return 0;
      }
      case 'pull': {
        if (positionals.length !== 1) throw new ImageError('usage: alacarte image pull REF [--name NAME]');
        const tls = values['tls-verify'];
        if (tls !== undefined && tls !== 'true' && tls !== 'false')
          throw new ImageError('--tls-verify takes true or false');
        needRoot();
        store.removeLeftovers();
        const image = await pullImage(store, {
          ref: positionals[0] as string,
          name: values.name,
          tlsVerify: tls !== 'false',
          idBase: ID_BASE,
          progress,
        });
        process.stdout.write(`pulled image ${image.name}: ${image.size_mib} MiB, from ${image.source}\n`);
        return 0;
      }
      case 'list': {
        const images = store.list();
        // An empty list from the wrong directory reads as "no images": say where it looked.
        if (!existsSync(store.imagesDir))
          throw new ImageError(
            `no images in ${resolve(store.imagesDir)}: give the data directory alacarte serve uses (--data DIR or ALACARTE_DATA)`,
          );
        if (values.json) {
          process.stdout.write(`${JSON.stringify({ images })}\n`);
          return 0;
        }
        const rows = images.map((i) => [i.name, `${i.size_mib} MiB`, i.source, i.description]);
        const widths = [0, 1, 2].map((c) =>
          Math.max(...[['NAME', 'SIZE', 'SOURCE'], ...rows].map((r) => (r[c] ?? '').length)),
        );
        for (const r of [['NAME', 'SIZE', 'SOURCE', 'DESCRIPTION'], ...rows])
          process.stdout.write(`${r.map((v, c) => (c < 3 ? v.padEnd(widths[c] ?? 0) : v)).join('  ')}\n`);
        return 0;
      }
      case 'rm': {
        if (positionals.length !== 1) throw new ImageError('usage: alacarte image rm NAME');
        needRoot();
        const name = positionals[0] as string;
        // Named before the tree goes: the alias names the tree's inode.
        const lxdAlias =
          config.driver.kind === 'lxd' && store.has(name)
            ? lxdImageAlias(join(config.dataDir, 'images'), name)
            : undefined;
        store.remove(name, await leasesOnImage(config, name));
        process.stdout.write(`removed image ${name}\n`);
        if (config.driver.kind !== 'lxd' || lxdAlias === undefined) return 0;
        try {
          if (await removeLxdImage(new LxdClient(lxdEndpoint(config.driver)), lxdAlias))
            process.stdout.write(`removed its copy in LXD (${lxdAlias})\n`);
          return 0;
        } catch (err) {
          throw new ImageError(
            `its copy in LXD is left (${(err as Error).message}): delete it with lxc image delete ${lxdAlias}`,
          );
        }
      }
      default:
        throw new ImageError(`unknown image command '${sub}' — run: alacarte image help`);
    }
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    process.stderr.write(`alacarte: ${e.message}\n`);
    return 1;
  }
}
