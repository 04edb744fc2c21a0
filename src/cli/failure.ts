/**
 * What a failed command prints on stderr: the error's own words (without the `Error:` of its
 * class name), and for a mistyped option (node:util parseArgs) the help to look at.
 */
export function failureText(err: unknown, command: string | undefined): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | undefined)?.code;
  const usage = typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
  const help =
    command === 'image' ? 'alacarte image help' : command ? `alacarte ${command} --help` : 'alacarte help';
  return `alacarte: ${message}\n${usage ? `hint: see: ${help}\n` : ''}`;
}
