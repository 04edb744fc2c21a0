import { lstatSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { IMAGE_NAME_PATTERN } from '../../core/lease-request.js';
import { fromOciConfig } from './image-config.js';
import { ImageError, type ImageListing, type ImageStore } from './image-store.js';
import { type ProgressSink, requireTool, runTool } from './image-tools.js';
import { runProcess } from './run-process.js';

export interface PullOptions {
  /** `docker://host/repo:tag`, a bare `host/repo:tag`, or `oci:DIR[:TAG]` (a local OCI layout). */
  ref: string;
  /** The image's name here; derived from the reference when absent (`python:3.12-slim` → `python-3.12-slim`). */
  name?: string;
  /** false for a registry without TLS (a loopback test registry): skopeo's --src-tls-verify=false. */
  tlsVerify?: boolean;
  /** Root inside the sandboxes is this host id (the driver's idBase). */
  idBase: number;
  progress: ProgressSink;
}

/** A reference, checked and split into skopeo's source and a default image name. */
export interface ParsedRef {
  /** What skopeo copies from: `docker://…` or `oci:/abs/dir:tag`. */
  source: string;
  transport: 'docker' | 'oci';
  defaultName: string;
}

// A distribution reference (distribution/reference's grammar): [domain[:port]/]path[:tag][@digest],
// path components lower-case alphanumerics joined by one separator, so no `..` or empty parts.
const DOMAIN_PART = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const PATH_PART = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOCKER_REF = new RegExp(
  `^(?:${DOMAIN_PART}(?:\\.${DOMAIN_PART})*(?::[0-9]{1,5})?/)?${PATH_PART}(?:/${PATH_PART})*` +
    '(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,128})?$',
);

/**
 * Checks a reference the way `alacarte image pull` takes it. Throws ImageError with a sentence for
 * anything else (other skopeo transports, spaces, a missing layout directory).
 */
export function parseRef(ref: string): ParsedRef {
  if (ref.length === 0 || ref.length > 512 || /[\s\0]/.test(ref) || ref.startsWith('-'))
    throw new ImageError(`'${ref.slice(0, 80)}' is not an image reference`);
  if (ref.startsWith('oci:')) {
    const rest = ref.slice(4);
    const colon = rest.lastIndexOf(':');
    const dir = colon > 0 ? rest.slice(0, colon) : rest;
    const tag = colon > 0 ? rest.slice(colon + 1) : 'latest';
    if (!dir || !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag))
      throw new ImageError(`'${ref}' is not an OCI layout reference (oci:DIR or oci:DIR:TAG)`);
    const abs = resolve(dir);
    let isLayout = false;
    try {
      isLayout = statSync(abs).isDirectory() && statSync(join(abs, 'index.json')).isFile();
    } catch {
      isLayout = false;
    }
    if (!isLayout) throw new ImageError(`${abs} is not an OCI image layout (no index.json there)`);
    return { source: `oci:${abs}:${tag}`, transport: 'oci', defaultName: nameOf(basename(abs), tag) };
  }
  const bare = ref.startsWith('docker://') ? ref.slice('docker://'.length) : ref;
  if (/^(?:dir|docker-archive|docker-daemon|oci-archive|containers-storage|ostree|sif|tarball):/.test(bare))
    // `docker-archive:x`, `dir:x`... skopeo reads local files with those: not offered here.
    throw new ImageError(`'${ref}': only registry references and oci:DIR[:TAG] layouts can be pulled`);
  if (!DOCKER_REF.test(bare))
    throw new ImageError(
      `'${ref.slice(0, 200)}' is not an image reference (e.g. docker.io/library/python:3.12-slim)`,
    );
  const path = bare.replace(/@.*$/, '');
  const last = path.slice(path.lastIndexOf('/') + 1);
  const colon = last.indexOf(':');
  const repo = colon < 0 ? last : last.slice(0, colon);
  const tag = colon < 0 ? 'latest' : last.slice(colon + 1);
  return { source: `docker://${bare}`, transport: 'docker', defaultName: nameOf(repo, tag) };
}

function nameOf(repo: string, tag: string): string {
  const raw = tag === 'latest' ? repo : `${repo}-${tag}`;
  const name = raw
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64);
  return IMAGE_NAME_PATTERN.test(name) ? name : 'image';
}

/**
 * Pulls an OCI image into the images directory with Debian's tools, no registry client of ours:
 * skopeo copies it into an OCI layout (verifying every blob's digest), skopeo reads its config,
 * umoci unpacks its layers (whiteouts, hard links, and no path leaving the root), then the store
 * shifts owners and moves it into place. Throws ImageError with the tool's own words on failure.
 */
export async function pullImage(store: ImageStore, options: PullOptions): Promise<ImageListing> {
  const parsed = parseRef(options.ref);
  const name = options.name ?? parsed.defaultName;
  if (!IMAGE_NAME_PATTERN.test(name))
    throw new ImageError(`'${name}' is not an image name (a-z, 0-9, '.', '_', '-'; up to 64)`);
  if (store.has(name))
    throw new ImageError(
      `image ${name} exists already: remove it first (alacarte image rm ${name}) or pull with --name`,
    );
  const skopeo = requireTool('skopeo', 'skopeo');
  const umoci = requireTool('umoci', 'umoci');
  const staging = store.stagingDir();
  try {
    const layout = `${join(staging, 'layout')}:image`;
    const tls =
      parsed.transport === 'docker' && options.tlsVerify === false ? ['--src-tls-verify=false'] : [];
    options.progress(`copying ${parsed.source}`);
    const copy = await runTool(
      skopeo,
      ['copy', ...tls, parsed.source, `oci:${layout}`],
      options.progress,
      undefined,
      { errorsOnStderr: true },
    );
    if (copy.code !== 0) throw new ImageError(`pulling ${options.ref} failed: ${hint(copy.tail)}`);
    const configJson = await readConfig(skopeo, layout);
    if (configJson === undefined) throw new ImageError(`reading the config of ${options.ref} failed`);
    options.progress('unpacking the layers');
    const bundle = join(staging, 'bundle');
    const unpack = await runTool(umoci, ['unpack', '--image', layout, bundle], options.progress, undefined, {
      errorsOnStderr: true,
    });
    if (unpack.code !== 0) throw new ImageError(`unpacking ${options.ref} failed: ${unpack.tail}`);
    const { config, dropped } = fromOciConfig(configJson, {
      description: `${parsed.source.replace(/^docker:\/\//, '')} (pulled)`,
      source: options.ref,
    });
    if (dropped.length > 0)
      options.progress(`left out environment variables a shell cannot hold: ${dropped.join(', ')}`);
    const rootfs = join(bundle, 'rootfs');
    makeWorkingDir(rootfs, config.working_dir);
    options.progress('shifting owners for user namespaces');
    return store.install(name, rootfs, config, options.idBase);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The image's config blob (OCI image-spec config.md), as skopeo reads it from the layout. */
async function readConfig(skopeo: string, layout: string): Promise<unknown> {
  const r = await runProcess(skopeo, ['inspect', '--config', `oci:${layout}`], 4 << 20);
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * skopeo's words (its log lines `time="…" level=fatal msg="…"` reduced to the message), plus what
 * to do for the common case of a registry without TLS.
 */
function hint(tail: string): string {
  const words = tail
    .split('\n')
    .map((line) => {
      const m = /^time="[^"]*" level=\w+ msg="(.*)"$/.exec(line);
      return m?.[1] === undefined ? line : m[1].replace(/\\(["\\])/g, '$1');
    })
    .join('\n');
  if (/server gave HTTP response to HTTPS client/.test(words))
    return `${words}\n(the registry speaks plain HTTP: add --tls-verify=false if you trust it)`;
  return words;
}

/**
 * Creates the image's WorkingDir when the image lacks it (docker does too), so exec can start
 * there. Only through real directories: at a link on the way it stops (the sandbox resolves
 * that link inside its own root, where the directory may well exist).
 */
function makeWorkingDir(rootfs: string, dir: string): void {
  let path = rootfs;
  for (const part of dir.split('/').filter((p) => p && p !== '.')) {
    if (part === '..') return;
    path = join(path, part);
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(path);
    } catch {
      st = undefined;
    }
    if (st === undefined) mkdirSync(path, { mode: 0o755 });
    else if (!st.isDirectory()) return;
  }
}
