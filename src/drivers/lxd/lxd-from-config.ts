import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../config.js';
import type { DriverLogger } from '../crun/crun-options.js';
import { LxdClient, type LxdEndpoint } from './lxd-client.js';
import { LxdDriver } from './lxd-driver.js';

type LxdSettings = Extract<Config['driver'], { kind: 'lxd' }>;

/**
 * Where the configured LXD answers: a remote member over TLS (certificate files read here), or the
 * local unix socket (`socket`, else $LXD_DIR/unix.socket, else Debian's /var/lib/lxd/unix.socket).
 */
export function lxdEndpoint(settings: LxdSettings, env: NodeJS.ProcessEnv = process.env): LxdEndpoint {
  if (settings.url && settings.clientCertPath && settings.clientKeyPath && settings.serverCertPath) {
    return {
      url: settings.url,
      clientCert: readFileSync(settings.clientCertPath, 'utf8'),
      clientKey: readFileSync(settings.clientKeyPath, 'utf8'),
      serverCert: readFileSync(settings.serverCertPath, 'utf8'),
    };
  }
  const socketPath =
    settings.socket ?? (env.LXD_DIR ? join(env.LXD_DIR, 'unix.socket') : '/var/lib/lxd/unix.socket');
  return { socketPath };
}

/** A short description of the endpoint for the banner (no secrets: paths and URLs only). */
export function describeEndpoint(endpoint: LxdEndpoint): string {
  return 'socketPath' in endpoint ? `unix socket ${endpoint.socketPath}` : `${endpoint.url} (TLS, pinned)`;
}

/**
 * The LXD driver of a node's configuration: images from `<dataDir>/images` (the node's image
 * store), the programs of /run/alacarte (and, delivered by bind, each lease's) under
 * `driver.runtimeDir` (default `<dataDir>/lxd-sandboxes`). Throws with the reason when
 * LXD does not answer or the storage pool is missing.
 */
export async function lxdDriverFromConfig(
  config: Config,
  logger: DriverLogger,
): Promise<{ driver: LxdDriver; endpoint: LxdEndpoint }> {
  if (config.driver.kind !== 'lxd') throw new Error('driver.kind is not lxd');
  const endpoint = lxdEndpoint(config.driver);
  try {
    const driver = await LxdDriver.create({
      client: new LxdClient(endpoint),
      imagesDir: join(config.dataDir, 'images'),
      runtimeDir: config.driver.runtimeDir ?? join(config.dataDir, 'lxd-sandboxes'),
      storagePool: config.driver.storagePool,
      logger,
    });
    return { driver, endpoint };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    // Node's bare "connect ENOENT /var/lib/lxd/unix.socket" does not say that LXD is missing.
    if (typeof code === 'string' && UNREACHABLE.has(code)) {
      throw new Error(
        `no LXD daemon answers at ${describeEndpoint(endpoint)} (${code}): install and initialise LXD ` +
          '(README, "Scaling out: LXD"), point driver.socket or driver.url at it, or leave the driver ' +
          'at crun, the default',
        { cause: err },
      );
    }
    throw err;
  }
}

/** Connection errors that mean nothing serves LXD's API where the node looked. */
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNRESET']);
