import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { IMAGE_NAME_PATTERN } from '../../core/lease-request.js';
import { shiftMark } from '../crun/preflight.js';
import { type LxdClient, LxdError, operationSchema } from './lxd-client.js';

const aliasSchema = z.object({ target: z.string().regex(/^[0-9a-f]{64}$/) }).loose();

/** Image imports under way in this process, by alias: one upload per image however many starts wait. */
const importing = new Map<string, Promise<string>>();

/**
 * The LXD image for an image of the node's image store (`<imagesDir>/<name>`, the crun driver's
 * root filesystems), imported once and then found by its alias; resolves with its fingerprint.
 * The alias names the tree's inode and change time, so a rebuilt image is imported anew. The
 * store's trees are owned by shifted ids (the crun driver's idBase, recorded beside each image);
 * the tarball carries the unshifted ones, LXD shifting them for its own unprivileged containers.
 */
export async function ensureLxdImage(client: LxdClient, imagesDir: string, name: string): Promise<string> {
  const dir = join(imagesDir, name);
  const alias = lxdImageAlias(imagesDir, name);
  const existing = importing.get(alias);
  if (existing) return existing;
  const job = findOrImport(client, dir, name, alias);
  importing.set(alias, job);
  try {
    return await job;
  } finally {
    importing.delete(alias);
  }
}

/**
 * The alias under which this node imports image `name` of its store `imagesDir`:
 * `alacarte-<name>-<12 hex>`, the hex naming the tree's inode and change time (so a rebuilt image
 * gets a new one, and another machine's store of the same name another). Throws LxdError 400 for
 * a name that is not one, and the fs error when the image is not in the store.
 */
export function lxdImageAlias(imagesDir: string, name: string): string {
  if (!IMAGE_NAME_PATTERN.test(name)) throw new LxdError(`not an image name: ${name}`, 400);
  const st = statSync(join(imagesDir, name));
  const tree = createHash('sha256').update(`${name}\0${st.ino}\0${st.mtimeMs}`).digest('hex').slice(0, 12);
  return `alacarte-${name.slice(0, 40)}-${tree}`;
}

/**
 * Deletes the LXD image imported under `alias` (lxdImageAlias) and the alias: LXD keeps its own
 * copy of every image it was given, which removing the tree from the node's store leaves behind.
 * Instances made from it keep running (they are copies). Resolves false when LXD has no such
 * alias; throws LxdError when LXD refuses.
 */
export async function removeLxdImage(client: LxdClient, alias: string): Promise<boolean> {
  let fingerprint: string;
  try {
    fingerprint = (await client.get(`/1.0/images/aliases/${alias}`, aliasSchema)).target;
  } catch (e) {
    if (e instanceof LxdError && e.status === 404) return false;
    throw e;
  }
  await client.call('DELETE', `/1.0/images/aliases/${alias}`, undefined);
  await client.run('DELETE', `/1.0/images/${fingerprint}`, undefined).catch((e: unknown) => {
    if (!(e instanceof LxdError && e.status === 404)) throw e;
  });
  return true;
}

async function findOrImport(client: LxdClient, dir: string, name: string, alias: string): Promise<string> {
  try {
    return (await client.get(`/1.0/images/aliases/${alias}`, aliasSchema)).target;
  } catch (e) {
    if (!(e instanceof LxdError && e.status === 404)) throw e;
  }
  const work = mkdtempSync(join(tmpdir(), 'alacarte-lxd-image-'));
  try {
    const tarball = join(work, 'image.tar');
    await buildTarball(dir, name, work, tarball);
    // A unified tarball's fingerprint is the SHA-256 of the file (LXD image format).
    const hash = createHash('sha256');
    await pipeline(createReadStream(tarball), hash);
    const fingerprint = hash.digest('hex');
    const started = await client.upload('/1.0/images', createReadStream(tarball), {
      'content-type': 'application/octet-stream',
      'x-lxd-public': '0',
    });
    const op = operationSchema.parse(started.metadata);
    await client.wait(op.id, 600).catch((e: unknown) => {
      // Already there (an import by another node of the cluster): its fingerprint is the same.
      if (!(e instanceof LxdError && /already exists/i.test(e.message))) throw e;
    });
    await client
      .call('POST', '/1.0/images/aliases', { name: alias, target: fingerprint })
      .catch((e: unknown) => {
        if (!(e instanceof LxdError && e.status === 409)) throw e;
      });
    return fingerprint;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Every distinct owner and group id in a tree (links not followed). */
function treeIds(root: string): { uids: Set<number>; gids: Set<number> } {
  const uids = new Set<number>();
  const gids = new Set<number>();
  const stack = [root];
  for (let path = stack.pop(); path !== undefined; path = stack.pop()) {
    const st = lstatSync(path);
    uids.add(st.uid);
    gids.add(st.gid);
    if (st.isDirectory()) for (const e of readdirSync(path)) stack.push(join(path, e));
  }
  return { uids, gids };
}

/** metadata.yaml plus rootfs/, owners moved back down by the store's idBase (GNU tar's id maps). */
async function buildTarball(dir: string, name: string, work: string, tarball: string): Promise<void> {
  let idBase = 0;
  try {
    idBase = Number(readFileSync(shiftMark(dir), 'utf8').trim()) || 0;
  } catch {
    // an unshifted tree (built for tests, or dropped in)
  }
  const { uids, gids } = treeIds(dir);
  const map = (ids: Set<number>) =>
    `${[...ids].map((id) => `+${id} alacarte:${id >= idBase ? id - idBase : id}`).join('\n')}\n`;
  writeFileSync(join(work, 'owners'), map(uids));
  writeFileSync(join(work, 'groups'), map(gids));
  writeFileSync(
    join(work, 'metadata.yaml'),
    `architecture: ${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}\ncreation_date: ${Math.floor(Date.now() / 1000)}\nproperties:\n  description: alacarte image ${name}\n`,
  );
  const args = [
    '-cf',
    tarball,
    '--numeric-owner',
    `--owner-map=${join(work, 'owners')}`,
    `--group-map=${join(work, 'groups')}`,
    '-C',
    work,
    'metadata.yaml',
    '-C',
    dir,
    '--transform=s,^\\.,rootfs,',
    '.',
  ];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < 4096) err += b.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`tar failed (${code}): ${err}`)),
    );
  });
}
