/**
 * The stock OpenSSH client's options every SSH test shares: no config file, only the test's
 * `knownHosts` (the host key must be in it), quiet, no agent. With `identity` (a private key's
 * path) it logs in with that key alone and never prompts; with null it is left to password tests.
 */
export function sshClientOptions(knownHosts: string, identity: string | null): string[] {
  const opts = [
    '-F',
    '/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'LogLevel=ERROR',
    '-o',
    'IdentityAgent=none',
  ];
  if (identity) opts.push('-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-i', identity);
  return opts;
}
