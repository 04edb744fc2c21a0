import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { IN_SANDBOX } from './oci-spec.js';

/** Where Debian's openssh-sftp-server puts the program. */
export const HOST_SFTP_SERVER = '/usr/lib/openssh/sftp-server';
/** The copy's directory below the driver's lib dir (shown at /run/alacarte/bin inside). */
const SUBDIR = 'sftp';
/** More shared libraries than this would be a program other than the one we know. */
const MAX_LIBRARIES = 16;

/**
 * Makes OpenSSH's sftp-server runnable in every sandbox, whatever its image holds: the program, its
 * dynamic loader and the libraries it links (only libc on Debian 12) are copied into
 * `<libDir>/sftp/`, which every sandbox sees read-only at /run/alacarte/bin/sftp, and run through
 * the copied loader with `--library-path`, so the image's own libraries (or their absence) play no
 * part. The tenant's files are then only ever interpreted inside the sandbox, by a process in its
 * namespaces running as its root. Answers the command to run inside, or undefined (with the reason)
 * when the host has no sftp-server (Debian package openssh-sftp-server).
 */
export function installSftpServer(
  libDir: string,
  program: string = HOST_SFTP_SERVER,
): { command: string[] } | { missing: string } {
  if (!existsSync(program)) return { missing: `${program} not found: install openssh-sftp-server` };
  let loader: string | undefined;
  const libraries: string[] = [];
  const ldd = execFileSync('ldd', [program], { encoding: 'utf8', timeout: 10_000 });
  for (const line of ldd.split('\n')) {
    const linked = /^\s*\S+ => (\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    const interpreter = /^\s*(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (linked?.[1]) libraries.push(linked[1]);
    else if (interpreter?.[1]) loader = interpreter[1];
  }
  if (!loader || libraries.length > MAX_LIBRARIES)
    return { missing: `${program}: cannot tell its loader and libraries from ldd` };
  const dir = join(libDir, SUBDIR);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Libraries and loader under the names the program asks for; their contents from the real files.
  for (const file of [...libraries, loader]) copyIfChanged(realpathSync(file), join(dir, basename(file)));
  copyIfChanged(program, join(dir, 'sftp-server'));
  const inside = `${IN_SANDBOX.binDir}/${SUBDIR}`;
  return {
    // `-d %d`: relative paths from the home directory (root's, from the image's passwd), as under
    // sshd, which starts it there; `scp f host:` puts f in /root as `alacarte cp` does.
    command: [`${inside}/${basename(loader)}`, '--library-path', inside, `${inside}/sftp-server`, '-d', '%d'],
  };
}

function copyIfChanged(from: string, to: string): void {
  const content = readFileSync(from);
  try {
    if (readFileSync(to).equals(content)) return;
  } catch {
    // missing
  }
  // Renamed into place: a sandbox running the old copy keeps it, the next one gets the new one.
  writeFileSync(`${to}.tmp`, content, { mode: 0o755 });
  renameSync(`${to}.tmp`, to);
}
