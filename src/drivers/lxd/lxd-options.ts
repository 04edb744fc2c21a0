import type { OvercommitSettings } from '../capacity.js';
import type { DriverLogger } from '../crun/crun-options.js';
import type { LxdClient } from './lxd-client.js';

/** Settings of the LXD driver (config `driver: {kind: "lxd"}`). */
export interface LxdDriverOptions {
  client: LxdClient;
  /** The node's image store (crun's `<dataDir>/images`): root filesystems imported as LXD images. */
  imagesDir: string;
  /**
   * A host directory of the node: the programs every instance gets in /run/alacarte/bin (static
   * busybox, init, kill script, sftp-server) and, with `delivery: "bind"`, each instance's
   * /run/alacarte (lease.json, deadline, bin/), mounted read-only into it.
   */
  runtimeDir: string;
  /**
   * How /run/alacarte reaches an instance. `bind`: a read-only disk device of
   * `<runtimeDir>/<lease>`, which needs the instance on this machine (the tenant cannot change it).
   * `push`: the files are written into the instance through LXD's file API before it starts and
   * rewritten through exec, so the instance can be on any cluster member (the tenant's root can
   * change its own copy of lease.json and the deadline file, but not the deadline init enforces:
   * in-instance.ts). Default: `bind` on a local daemon that is not clustered, `push` otherwise.
   */
  delivery?: 'bind' | 'push';
  /** Tags this node's instances (config `user.alacarte.owner`), so list() sees only its own. */
  owner?: string;
  /** The storage pool of instances' root disks. */
  storagePool?: string;
  overcommit?: Partial<OvercommitSettings>;
  /** The host's static busybox, copied into every instance's /run/alacarte/bin. */
  busybox?: string;
  logger?: DriverLogger;
}
