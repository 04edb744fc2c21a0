import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  constants as fsConstants,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { deadlineFile, leaseFile } from '../crun/init-script.js';
import { installSftpServer } from '../crun/sftp-server.js';
import { IN_INSTANCE, instanceInit, killTagScript } from './in-instance.js';
import type { LxdClient } from './lxd-client.js';

/*
 * An instance's /run/alacarte (lease.json, deadline, bin/): the node's shared copies of bin/ in
 * `<runtimeDir>/.lib`, and how they reach an instance: a host directory of hard links mounted
 * read-only (delivery `bind`, where the deadline files are also rewritten and init's FIFO written),
 * or written into the created instance through LXD's file API (delivery `push`).
 */

/**
 * Installs the programs every instance gets in /run/alacarte/bin into `libDir` (static busybox,
 * its copy init runs, init, kill script, sftp-server). Resolves how sftp-server runs inside, or
 * why it cannot.
 */
export function installSharedFiles(
  libDir: string,
  busybox: string,
): { command: string[] } | { missing: string } {
  mkdirSync(libDir, { recursive: true, mode: 0o755 });
  // Replaced, not rewritten: running instances hold hard links to these (a busybox being run
  // cannot be written: ETXTBSY), and replicas sharing the directory may write them at once.
  const replace = (file: string, write: (tmp: string) => void) => {
    const tmp = join(libDir, `.${file}.${process.pid}.${randomBytes(4).toString('hex')}`);
    write(tmp);
    renameSync(tmp, join(libDir, file));
  };
  replace('busybox', (tmp) => copyFileSync(busybox, tmp));
  // Executable but not readable by init's uid: the kernel then makes init non-dumpable.
  replace('busybox-init', (tmp) => {
    copyFileSync(busybox, tmp);
    chmodSync(tmp, 0o711);
  });
  replace('init.sh', (tmp) => writeFileSync(tmp, instanceInit(), { mode: 0o644 }));
  replace('kill-tag.sh', (tmp) => writeFileSync(tmp, killTagScript(), { mode: 0o644 }));
  return installSftpServer(libDir);
}

/**
 * /run/alacarte on the host, in `dir`: deadline, lease.json and bin/ (hard links to the shared
 * copies of `libDir`).
 */
export function writeLeaseDir(dir: string, libDir: string, leaseId: string, deadline: Date): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'bin'), { recursive: true, mode: 0o755 });
  linkTree(libDir, join(dir, 'bin'));
  // Writable for init to open it read-write (no blocking open); a tenant writing to it only cuts
  // init's one-second wait short.
  execFileSync('mkfifo', ['-m', '0666', join(dir, 'bin', 'wait')]);
  writeDeadline(dir, leaseId, deadline);
}

/**
 * /run/alacarte written into a created, not yet started instance through LXD's file API, on
 * whichever member holds it: bin/ (the shared copies of `libDir`, their modes kept), deadline and
 * lease.json. Its FIFO is made by init itself (the file API makes no FIFOs).
 */
export async function pushRunDir(
  client: LxdClient,
  libDir: string,
  name: string,
  leaseId: string,
  deadline: Date,
): Promise<void> {
  await push(client, name, IN_INSTANCE.runDir, undefined, 0o755);
  const walk = async (from: string, to: string): Promise<void> => {
    await push(client, name, to, undefined, 0o755);
    for (const entry of readdirSync(from, { withFileTypes: true })) {
      const src = join(from, entry.name);
      // init copies busybox itself (in-instance.ts): a second upload of it would slow each start.
      if (`${to}/${entry.name}` === IN_INSTANCE.initBusybox) continue;
      if (entry.isDirectory()) await walk(src, `${to}/${entry.name}`);
      else await push(client, name, `${to}/${entry.name}`, readFileSync(src), statSync(src).mode & 0o755);
    }
  };
  await walk(libDir, `${IN_INSTANCE.runDir}/bin`);
  await push(client, name, `${IN_INSTANCE.runDir}/deadline`, Buffer.from(deadlineFile(deadline)), 0o644);
  await push(
    client,
    name,
    `${IN_INSTANCE.runDir}/lease.json`,
    Buffer.from(leaseFile(leaseId, deadline)),
    0o644,
  );
}

/** One file (or, without content, a directory) into an instance, owned by its root. */
async function push(
  client: LxdClient,
  name: string,
  path: string,
  content: Buffer | undefined,
  mode: number,
): Promise<void> {
  await client.upload(
    `/1.0/instances/${name}/files?path=${encodeURIComponent(path)}`,
    Readable.from(content ? [content] : []),
    {
      'content-type': 'application/octet-stream',
      'x-lxd-type': content ? 'file' : 'directory',
      'x-lxd-uid': '0',
      'x-lxd-gid': '0',
      'x-lxd-mode': mode.toString(8).padStart(4, '0'),
      'x-lxd-write': 'overwrite',
    },
  );
}

/**
 * deadline and lease.json rewritten in the host directory `dir` (delivery `bind`), then `move` (a
 * sealed line, deadline-seal.ts) written to init's FIFO, when one is given: without waiting, since
 * init holds the FIFO open (ENXIO: nobody has it open, init not yet or no more; EAGAIN: full,
 * which only a tenant writing to it and init not reading can cause).
 */
export function writeDeadline(dir: string, leaseId: string, deadline: Date, move?: string): void {
  // Renamed into place, so a reader never sees half a file.
  for (const [file, text] of [
    ['deadline', deadlineFile(deadline)],
    ['lease.json', leaseFile(leaseId, deadline)],
  ] as const) {
    writeFileSync(join(dir, `.${file}.tmp`), text, { mode: 0o644 });
    renameSync(join(dir, `.${file}.tmp`), join(dir, file));
  }
  if (move === undefined) return;
  const fd = openSync(join(dir, 'bin', 'wait'), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  try {
    // Twice in one write: see rewriteScript (in-instance.ts).
    writeSync(fd, `${move}\n${move}\n`);
  } finally {
    closeSync(fd);
  }
}

/** Hard links (copies across file systems) of every file of `from` in `to`, directories recreated. */
function linkTree(from: string, to: string): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) {
      mkdirSync(dst, { mode: 0o755 });
      linkTree(src, dst);
    } else {
      try {
        linkSync(src, dst);
      } catch {
        copyFileSync(src, dst);
      }
    }
  }
}
