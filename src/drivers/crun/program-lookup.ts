/**
 * A program looked up as an ordinary exec does (exec-agent.ts execScript, native/exec-agent.c), in
 * the host's busybox shell that every sandbox has: a name is searched in PATH for an executable
 * regular file, never taken as one of busybox's applets or the shell's builtins (busybox's shell
 * prefers its own `sleep` or `sh` to the image's, and would "run" `exit` or `cd`). Not found: exits
 * 127; a path that is not an executable regular file: exits 126; each with a message on stderr.
 *
 * Shell lines (joined by newlines) that read `$_alacarte_c`, the program as given, and
 * `$_alacarte_p`, the PATH to look in (an empty one has no directory, not even the working one, as
 * the shell splits it), and set `$_alacarte_f` to the file to execute. They need `set -f` (no globbing of PATH's entries) and leave IFS unset.
 * The names are chosen so that no image or lease plausibly sets them; they are never exported.
 */
export const PROGRAM_LOOKUP = [
  'case $_alacarte_c in */*) _alacarte_f=$_alacarte_c ;; *)',
  '  _alacarte_f=',
  '  IFS=:; for _alacarte_d in $_alacarte_p; do',
  '    [ -n "$_alacarte_d" ] || _alacarte_d=.',
  '    [ -f "$_alacarte_d/$_alacarte_c" ] && [ -x "$_alacarte_d/$_alacarte_c" ] && { _alacarte_f=$_alacarte_d/$_alacarte_c; break; }',
  '  done; unset IFS',
  '  [ -n "$_alacarte_f" ] || { echo "$_alacarte_c: not found" >&2; exit 127; } ;;',
  'esac',
  '[ -e "$_alacarte_f" ] || { echo "$_alacarte_c: not found" >&2; exit 127; }',
  '[ -f "$_alacarte_f" ] && [ -x "$_alacarte_f" ] || { echo "$_alacarte_c: cannot execute: not an executable file" >&2; exit 126; }',
].join('\n');

/** The variables PROGRAM_LOOKUP sets, to unset before the program's environment is exported. */
export const PROGRAM_LOOKUP_VARS = '_alacarte_c _alacarte_p _alacarte_f _alacarte_d';
