/**
 * The commands that move files in and out of a sandbox (API.md "Files"). They run inside the
 * sandbox through ComputeDriver.spawn, as its root, in its mount namespace: path resolution,
 * symlinks and tar parsing all happen there, so a `..`, an absolute symlink or a tar member naming
 * `/etc/passwd` can only ever reach the sandbox's own files. The host only pipes bytes.
 *
 * Each command is a fixed shell script run by the sandbox's busybox; the tenant's path and the
 * mode are positional arguments (`$1`, `$2`), never part of the script's text.
 */

/**
 * The static busybox every sandbox has, whatever its image (src/drivers/crun/README.md: the host's
 * busybox, mounted read-only at /run/alacarte/bin). Named explicitly so that images without `tar`
 * or `cat` work, and so that nothing in the tenant's PATH is run.
 */
export const SANDBOX_BUSYBOX = '/run/alacarte/bin/busybox';

/** Exit statuses the scripts use to say why they refused (busybox's own failures exit 1). */
export const FILE_EXIT = {
  notFound: 64,
  notFileOrDirectory: 65,
  tooLarge: 66,
  isDirectory: 67,
} as const;

/** What the download script writes before the content: one letter and a newline. */
export const DOWNLOAD_MARK = { file: 'f\n', directory: 'd\n' } as const;

const B = `b=${SANDBOX_BUSYBOX}`;

/**
 * Writes stdin to the file `$1` with mode `$2` (empty: keep an existing file's mode, else 0644),
 * making its parent directories. The bytes go to a temporary file beside it (`.alacarte-upload-$3`),
 * renamed over `$1` once all of them are written and, when the client announced a length `$4`, only
 * if that many arrived. A transfer that fails (disk full, client gone: the host kills the process
 * before closing its stdin, and then runs removeUploadCommand) leaves the old file, or none, never a
 * partial one. (One gap: a chunked upload cut off before the runtime has written the process's pid
 * file cannot be killed in time; the runtime is killed instead, its stdin closes, and what arrived
 * is kept. With `$4` the size check catches that too.) A symlink at `$1` is replaced, not written
 * through.
 */
const WRITE_FILE = `${B}
p=$1
if [ -d "$p" ]; then echo "$p is a directory" >&2; exit ${FILE_EXIT.isDirectory}; fi
d=\${p%/*}
t=\${d}/.alacarte-upload-$3
$b mkdir -p "\${d:-/}" || exit 1
trap '$b rm -f "$t"' EXIT
$b cat >"$t" || exit 1
if [ -n "$4" ] && [ "$($b stat -c %s "$t")" != "$4" ]; then echo "fewer bytes arrived than announced" >&2; exit 1; fi
if [ -n "$2" ]; then m=$2; elif [ -e "$p" ]; then m=$($b stat -L -c %a "$p") || exit 1; else m=0644; fi
$b chmod "$m" "$t" || exit 1
$b mv -f "$t" "$p" || exit 1
trap - EXIT
`;

/** Removes the temporary file of a WRITE_FILE that was killed (`$1` its path, `$2` its suffix). */
const REMOVE_UPLOAD = `${B}
d=\${1%/*}
$b rm -f "\${d}/.alacarte-upload-$2"
`;

/**
 * Unpacks the tar archive on stdin into the directory `$1` (made if missing). busybox tar strips
 * leading `/` and `../` from member names and makes files owned by the sandbox's root (`-o`).
 * busybox tar rewrites an existing file in place (same inode, truncated first), so a program
 * reading it meanwhile could see it empty or half written: the archive is unpacked into a
 * directory beside (`$1/.alacarte-unpack-$2`) and each member then renamed over its target, so a
 * reader sees the old file or the new one. A new directory moves whole; an existing one stays and
 * takes the archive's mode (as tar would do); a failed unpack (disk full, bad archive) changes
 * nothing in `$1`.
 */
const UNPACK_TAR = `${B}
$b mkdir -p "$1" || exit 1
s=$1/.alacarte-unpack-$2
trap '$b rm -rf "$s"' EXIT
$b mkdir -m 0700 "$s" || exit 1
$b tar -x -o -f - -C "$s" || exit 1
cd "$s" || exit 1
$b find . -mindepth 1 -print0 | while IFS= read -r -d "" e; do
  [ -e "$e" ] || [ -L "$e" ] || continue
  t=$1/\${e#./}
  if [ -d "$e" ] && [ ! -L "$e" ] && [ -d "$t" ]; then
    [ -L "$t" ] || $b chmod "$($b stat -c %a "$e")" "$t" || exit 1
  else
    $b mv -f -T "$e" "$t" || exit 1
  fi
done || exit 1
`;

/** Removes the staging directory of an UNPACK_TAR that was killed (`$1` the target, `$2` its suffix). */
const REMOVE_UNPACK = `${B}
$b rm -rf "$1/.alacarte-unpack-$2"
`;

/**
 * Writes `f\n` and the file `$1`, or `d\n` and a tar archive of the directory `$1` (its contents,
 * as `./…`, symlinks kept as links). A regular file larger than `$2` bytes, or a directory
 * whose files take more than that (`du`), is refused; devices, FIFOs and sockets too
 * (`cat /dev/zero` would never end).
 */
const READ_PATH = `${B}
p=$1
if [ -d "$p" ]; then
  s=$($b du -s -k "$p" 2>/dev/null | $b cut -f 1)
  if [ "\${s:-0}" -gt $(($2 / 1024)) ]; then exit ${FILE_EXIT.tooLarge}; fi
  printf 'd\\n'
  exec $b tar -c -f - -C "$p" .
fi
if [ -f "$p" ]; then
  s=$($b stat -L -c %s "$p") || exit 1
  if [ "$s" -gt "$2" ]; then exit ${FILE_EXIT.tooLarge}; fi
  printf 'f\\n'
  exec $b cat "$p"
fi
if [ -e "$p" ]; then exit ${FILE_EXIT.notFileOrDirectory}; fi
exit ${FILE_EXIT.notFound}
`;

/**
 * The spawn command that writes stdin to the file `path` (absolute, not ending in `/`), with `mode`
 * if given. `upload` names its temporary file (letters and digits); `size`, when the client
 * announced it, is checked before the file replaces the old one.
 */
export function writeFileCommand(
  path: string,
  options: { mode?: string; upload: string; size?: number },
): string[] {
  const size = options.size === undefined ? '' : String(options.size);
  return [
    SANDBOX_BUSYBOX,
    'sh',
    '-c',
    WRITE_FILE,
    'alacarte-put',
    path,
    options.mode ?? '',
    options.upload,
    size,
  ];
}

/** The spawn command that removes what a killed writeFileCommand(path, {upload}) left. */
export function removeUploadCommand(path: string, upload: string): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', REMOVE_UPLOAD, 'alacarte-clean', path, upload];
}

/**
 * The spawn command that unpacks a tar archive on stdin into the directory `path`; `upload` names
 * its staging directory (letters and digits).
 */
export function unpackTarCommand(path: string, upload: string): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', UNPACK_TAR, 'alacarte-put', path, upload];
}

/** The spawn command that removes what a killed unpackTarCommand(path, upload) left. */
export function removeUnpackCommand(path: string, upload: string): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', REMOVE_UNPACK, 'alacarte-clean', path, upload];
}

/** The spawn command that reads `path`: a mark, then the file or a tar of the directory. */
export function readPathCommand(path: string, maxFileBytes: number): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', READ_PATH, 'alacarte-get', path, String(maxFileBytes)];
}
