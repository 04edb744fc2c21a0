import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * scripts/setup.sh on a "fresh machine": a copy of the script in an empty checkout, with apt-get,
 * dpkg-query and npm replaced by stand-ins on PATH (nothing is installed for real), to see what a
 * user sees during the first `npm start`: every step announced, apt's progress one line a package,
 * and each step's time.
 */
const root = mkdtempSync(join(tmpdir(), 'alacarte-setup-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function fakeMachine(installed: string[]): { dir: string; bin: string; log: string } {
  const dir = mkdtempSync(join(root, 'clone-'));
  const bin = join(dir, 'fake-bin');
  const log = join(dir, 'calls.log');
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(bin);
  copyFileSync(join(REPO_ROOT, 'scripts', 'setup.sh'), join(dir, 'scripts', 'setup.sh'));
  mkdirSync(join(dir, 'native'));
  for (const file of ['exec-agent.c', 'exec-agent.h', 'sandbox-init.c'])
    copyFileSync(join(REPO_ROOT, 'native', file), join(dir, 'native', file));
  writeFileSync(join(dir, 'package-lock.json'), '{"lockfileVersion": 3}\n');
  const tool = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/bash\necho "${name} $*" >> ${log}\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  tool(
    'dpkg-query',
    `case " ${installed.join(' ')} " in *" \${@: -1} "*) echo -n 'install ok installed';; *) exit 1;; esac`,
  );
  tool(
    'apt-get',
    `[ "$1" = install ] || exit 0
echo 'Reading package lists...'
echo 'Need to get 1234 kB of archives.'
for p in "\${@:5}"; do echo "Unpacking $p (1.0) ..."; echo "Setting up $p (1.0) ..."; done`,
  );
  // The compiler writes its -o file.
  tool(
    'cc',
    'while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done; echo built > "$out"; chmod +x "$out"',
  );
  tool(
    'npm',
    `if [ "$1" = ci ]; then mkdir -p node_modules; elif [ "$1" = run ]; then echo "built by npm $*"; fi`,
  );
  return { dir, bin, log };
}

function run(machine: { dir: string; bin: string }, args: string[]) {
  return spawnSync('bash', [join(machine.dir, 'scripts', 'setup.sh'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${machine.bin}:${process.env.PATH ?? ''}` },
  });
}

/** The packages a node needs, as the script lists them (the list grows with the project). */
const NODE_PACKAGES = (
  /^debian_packages=\(([^)]*)\)$/m.exec(readFileSync(join(REPO_ROOT, 'scripts', 'setup.sh'), 'utf8'))?.[1] ??
  ''
)
  .split(/\s+/)
  .filter(Boolean);
const FRESH = ['crun', 'busybox-static', 'uidmap'];

describe('scripts/setup.sh shows its progress', () => {
  it('announces each step of a first `npm start`, with apt one line a package and the times', () => {
    expect(NODE_PACKAGES).toEqual(expect.arrayContaining([...FRESH, 'iproute2', 'bsdutils']));
    const machine = fakeMachine(NODE_PACKAGES.filter((p) => !FRESH.includes(p)));
    const first = run(machine, ['--build']);
    expect(first.status, first.stderr).toBe(0);
    const lines = first.stderr.trim().split('\n');
    expect(lines).toEqual([
      `alacarte setup [1/4] Debian packages: ${NODE_PACKAGES.join(' ')}`,
      'alacarte setup       installing crun busybox-static uidmap with apt-get (a minute or two the first time)',
      'alacarte setup       apt-get update…',
      'alacarte setup         Need to get 1234 kB of archives.',
      'alacarte setup         Setting up crun (1.0) ...',
      'alacarte setup         Setting up busybox-static (1.0) ...',
      'alacarte setup         Setting up uidmap (1.0) ...',
      expect.stringMatching(/^alacarte setup {7}installed \(\d+s\)$/),
      'alacarte setup [2/4] npm packages',
      'alacarte setup       npm ci (one to three minutes the first time: it compiles native modules; quiet until done)…',
      expect.stringMatching(/^alacarte setup {7}installed \(\d+s\)$/),
      'alacarte setup [3/4] the init and exec agent of the sandboxes (native/)',
      expect.stringMatching(/^alacarte setup {7}built \(\d+s\)$/),
      'alacarte setup [4/4] building: TypeScript to dist/, then the web page (half a minute or so)',
      expect.stringMatching(/^alacarte setup {7}built \(\d+s\)$/),
      // Said before the debian image's build, which `npm start` runs next: so it must not say "starting".
      'alacarte setup       next: the debian image if it is missing (first start only, its progress shown), then the node',
    ]);
    expect(first.stdout).toContain('built by npm run --silent build');
    expect(existsSync(join(machine.dir, 'node_modules', '.alacarte-lock-stamp'))).toBe(true);
  });

  it('says quickly that everything is there on the next start, and installs nothing', () => {
    const machine = fakeMachine(NODE_PACKAGES);
    expect(run(machine, []).status).toBe(0);
    writeFileSync(machine.log, '');
    const again = run(machine, []);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(
      /^alacarte setup \[1\/3\] Debian packages: .+\nalacarte setup {7}all there \(\d+s\)\nalacarte setup \[2\/3\] npm packages\nalacarte setup {7}up to date \(\d+s\)\nalacarte setup \[3\/3\] the init and exec agent of the sandboxes \(native\/\)\nalacarte setup {7}up to date \(\d+s\)\n$/,
    );
    const calls = spawnSync('cat', [machine.log], { encoding: 'utf8' }).stdout;
    expect(calls).not.toMatch(/apt-get|npm ci|^cc /m);
  });
});

describe('scripts/start.sh (npm start)', () => {
  it('builds the debian image where the node given --data or --config looks, then serves with every flag', () => {
    const dir = mkdtempSync(join(root, 'start-'));
    const bin = join(dir, 'fake-bin');
    const log = join(dir, 'calls.log');
    mkdirSync(join(dir, 'scripts'));
    mkdirSync(bin);
    copyFileSync(join(REPO_ROOT, 'scripts', 'start.sh'), join(dir, 'scripts', 'start.sh'));
    writeFileSync(join(dir, 'scripts', 'setup.sh'), `echo "setup $*" >> ${log}\n`);
    writeFileSync(join(bin, 'node'), `#!/bin/bash\necho "node $*" >> ${log}\n`);
    chmodSync(join(bin, 'node'), 0o755);
    const run = (args: string[]) => {
      writeFileSync(log, '');
      const r = spawnSync('bash', [join(dir, 'scripts', 'start.sh'), ...args], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
      });
      expect(r.status, r.stderr).toBe(0);
      return readFileSync(log, 'utf8').trim().split('\n');
    };
    expect(run(['--data', '/srv/node', '--port', '9000', '--config=/etc/a.json'])).toEqual([
      'setup --build',
      'node dist/cli/main.js image build debian --if-missing --data /srv/node --config=/etc/a.json',
      'node dist/cli/main.js serve --data /srv/node --port 9000 --config=/etc/a.json',
    ]);
    expect(run([])).toEqual([
      'setup --build',
      'node dist/cli/main.js image build debian --if-missing',
      'node dist/cli/main.js serve',
    ]);
  });
});
