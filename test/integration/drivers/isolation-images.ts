import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { IN_SANDBOX } from '../../../src/drivers/crun/oci-spec.js';
import { debianImagesDir, pulledImagesDir } from '../../helpers/test-images.js';
import { tempBase } from './crun-target.js';

export interface PreparedImage {
  /** An images directory holding the image; the target's own (busybox is built there) when absent. */
  imagesDir?: string;
  cleanup(): void;
}

/** An image the isolation suites run on, with the working directory a sandbox of it starts in. */
export interface IsolationImage {
  name: string;
  workingDir: string;
  prepare(): Promise<PreparedImage>;
}

/**
 * The images the isolation suites (crun, egress) run on: the built-in busybox, debian (a
 * distribution: set-uid files, merged /usr, its own shell and tools, no busybox applets) and an OCI
 * image pulled with skopeo and umoci.
 */
export const ISOLATION_IMAGES: IsolationImage[] = [
  { name: 'busybox', workingDir: '/', prepare: async () => ({ cleanup: () => {} }) },
  // Built once per machine (scripts/setup.sh installs mmdebstrap); shared by every run after.
  {
    name: 'debian',
    workingDir: '/root',
    prepare: async () => ({ imagesDir: await debianImagesDir(), cleanup: () => {} }),
  },
  {
    name: 'pulled',
    workingDir: '/app',
    prepare: async () => {
      const base = tempBase();
      return {
        imagesDir: await pulledImagesDir(base),
        cleanup: () => rmSync(base, { recursive: true, force: true }),
      };
    },
  },
];

/**
 * A command line for an image: the image's own program when it has it, else the sandbox's busybox
 * applet. The isolation cases use busybox tools (ps, nc, ip, nslookup) that not every image has;
 * every sandbox has /run/alacarte/bin/busybox. Shells (`sh`) are always busybox's, so that a script
 * means the same on every image. `imagesDir` is the driver's, `image` the image's name there.
 */
export function imageTool(imagesDir: string, image: string): (argv: readonly string[]) => string[] {
  return (argv) => {
    if (image === 'busybox') return [...argv];
    const [program = '', ...rest] = argv;
    const name = program.slice(program.lastIndexOf('/') + 1);
    const root = join(imagesDir, image);
    const own =
      name !== 'sh' &&
      (program.startsWith('/')
        ? existsSync(join(root, program))
        : ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((d) =>
            existsSync(join(root, d, name)),
          ));
    return own ? [...argv] : [IN_SANDBOX.busybox, name, ...rest];
  };
}
