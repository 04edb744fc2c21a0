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
 * Writes stdin to a temporary file beside `$1` (`f` in `.alacarte-upload-$2`, a directory only the
 * sandbox's root enters: another user inside cannot swap the file for a link before the commit's
 * chmod, unless `$1`'s directory is that user's own), making `$1`'s parent directories, and keeps
 * it only when stdin ended with as many bytes as the client announced (`$3`, when it did). It
 * never touches `$1`: COMMIT_FILE moves the file in, run by the host only once it has seen the
 * whole body arrive. A stdin that closes early (the host kills the runtime of an upload cut off,
 * whose end then looks like a normal end of input here) leaves a temporary file that nothing
 * commits and removeUploadCommand removes, never a partial `$1`.
 */
const STAGE_FILE = `${B}
p=$1
if [ -d "$p" ]; then echo "$p is a directory" >&2; exit ${FILE_EXIT.isDirectory}; fi
d=\${p%/*}
s=\${d}/.alacarte-upload-$2
t=$s/f
$b mkdir -p "\${d:-/}" || exit 1
trap '$b rm -rf "$s"' EXIT
$b mkdir -m 0700 "$s" || exit 1
$b cat >"$t" || exit 1
if [ -n "$3" ] && [ "$($b stat -c %s "$t")" != "$3" ]; then echo "fewer bytes arrived than announced" >&2; exit 1; fi
trap - EXIT
`;

/**
 * Moves a STAGE_FILE's temporary file over `$1` with mode `$2` (empty: keep an existing file's
 * mode, else 0644); `$3` the upload's suffix. A symlink at `$1` is replaced, not written through;
 * a reader sees the old file or the new one.
 */
const COMMIT_FILE = `${B}
p=$1
s=\${p%/*}/.alacarte-upload-$3
t=$s/f
trap '$b rm -rf "$s"' EXIT
if [ -d "$p" ]; then echo "$p is a directory" >&2; exit ${FILE_EXIT.isDirectory}; fi
if [ -n "$2" ]; then m=$2; elif [ -e "$p" ]; then m=$($b stat -L -c %a "$p") || exit 1; else m=0644; fi
$b chmod "$m" "$t" || exit 1
$b mv -f "$t" "$p" || exit 1
`;

/** Removes the temporary file of a STAGE_FILE not committed (`$1` its path, `$2` its suffix). */
const REMOVE_UPLOAD = `${B}
d=\${1%/*}
$b rm -rf "\${d}/.alacarte-upload-$2"
`;

/**
 * Unpacks the tar archive on stdin into a staging directory beside the target (`$1/.alacarte-
 * unpack-$2`, `$1` made if missing). busybox tar strips leading `/` and `../` from member names and
 * makes files owned by the sandbox's root (`-o`). Nothing of `$1` is touched: COMMIT_UNPACK moves
 * the members in, run by the host only once it has seen the whole archive arrive (busybox tar takes
 * an archive cut at a member's end for a whole one).
 */
const STAGE_UNPACK = `${B}
$b mkdir -p "$1" || exit 1
s=$1/.alacarte-unpack-$2
trap '$b rm -rf "$s"' EXIT
$b mkdir -m 0700 "$s" || exit 1
$b tar -x -o -f - -C "$s" || exit 1
trap - EXIT
`;

/**
 * Moves what STAGE_UNPACK unpacked into `$1`, each member renamed over its target: busybox tar
 * rewrites an existing file in place (same inode, truncated first), so a program reading it
 * meanwhile could see it empty or half written; renamed, a reader sees the old file or the new
 * one. A new directory moves whole; an existing one stays and takes the archive's mode (as tar
 * would do).
 */
const COMMIT_UNPACK = `${B}
s=$1/.alacarte-unpack-$2
trap '$b rm -rf "$s"' EXIT
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

/** Removes the staging directory of a STAGE_UNPACK not committed (`$1` the target, `$2` its suffix). */
const REMOVE_UNPACK = `${B}
$b rm -rf "$1/.alacarte-unpack-$2"
`;

/**
 * Writes `f\n` and the file `$1`, or `d\n` and a tar archive of the directory `$1` (its contents,
 * as `./…`, symlinks kept as links). A regular file larger than `$2` bytes, or a directory
 * whose files' sizes add up to more than that (`du -b`: a sparse file counts whole, as tar sends
 * it), is refused; devices, FIFOs and sockets too
 * (`cat /dev/zero` would never end).
 */
const READ_PATH = `${B}
p=$1
if [ -d "$p" ]; then
  s=$($b du -s -b "$p" 2>/dev/null | $b cut -f 1)
  if [ -z "$s" ]; then echo "cannot measure $p" >&2; exit 1; fi
  if [ "$s" -gt "$2" ]; then exit ${FILE_EXIT.tooLarge}; fi
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
 * The spawn command that stages stdin for the file `path` (absolute, not ending in `/`): `upload`
 * names its temporary file (letters and digits); `size`, when the client announced it, is checked.
 * commitFileCommand then moves it in; removeUploadCommand removes it if it is not committed.
 */
export function stageFileCommand(path: string, options: { upload: string; size?: number }): string[] {
  const size = options.size === undefined ? '' : String(options.size);
  return [SANDBOX_BUSYBOX, 'sh', '-c', STAGE_FILE, 'alacarte-put', path, options.upload, size];
}

/** The spawn command that moves a staged upload over `path`, with `mode` if given. */
export function commitFileCommand(path: string, options: { mode?: string; upload: string }): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', COMMIT_FILE, 'alacarte-put', path, options.mode ?? '', options.upload];
}

/** The spawn command that removes an upload staged by stageFileCommand(path, {upload}) and not committed. */
export function removeUploadCommand(path: string, upload: string): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', REMOVE_UPLOAD, 'alacarte-clean', path, upload];
}

/**
 * The spawn command that unpacks a tar archive on stdin into a staging directory of `path`;
 * `upload` names it (letters and digits). commitUnpackCommand then moves its members in.
 */
export function stageUnpackCommand(path: string, upload: string): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', STAGE_UNPACK, 'alacarte-put', path, upload];
}

/** The spawn command that moves what stageUnpackCommand(path, upload) unpacked into `path`. */
export function commitUnpackCommand(path: string, upload: string): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', COMMIT_UNPACK, 'alacarte-put', path, upload];
}

/** The spawn command that removes what stageUnpackCommand(path, upload) left and was not committed. */
export function removeUnpackCommand(path: string, upload: string): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', REMOVE_UNPACK, 'alacarte-clean', path, upload];
}

/** The spawn command that reads `path`: a mark, then the file or a tar of the directory. */
export function readPathCommand(path: string, maxFileBytes: number): string[] {
  return [SANDBOX_BUSYBOX, 'sh', '-c', READ_PATH, 'alacarte-get', path, String(maxFileBytes)];
}
