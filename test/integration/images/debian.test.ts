import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxHandle } from '../../../src/drivers/compute-driver.js';
import { waitForShell } from '../../helpers/terminal.js';
import { debianImagesDir } from '../../helpers/test-images.js';
import { newLeaseId, TEST_LIMITS } from '../drivers/compute-driver.contract.js';
import { type CrunTarget, crunSkipReason, findOnPath, makeCrunTarget } from '../drivers/crun-target.js';

const skipReason =
  crunSkipReason ?? (findOnPath('mmdebstrap') ? undefined : 'mmdebstrap not installed (scripts/setup.sh)');

if (skipReason) {
  describe.skip(`the debian image: skipped, ${skipReason}`, () => {
    it('needs root, crun and mmdebstrap', () => {});
  });
} else {
  describe('the debian image (built with mmdebstrap, once per machine)', () => {
    let t: CrunTarget;
    let imagesDir: string;
    let a: SandboxHandle;
    const started: string[] = [];

    /** Runs a script with the image's own shell and tools (not the sandbox's busybox). */
    const bash = async (script: string, timeoutMs = 60_000) => {
      const r = await t.driver.exec(a, {
        command: ['bash', '-c', script],
        timeoutMs,
        maxOutputBytes: 1 << 20,
      });
      return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
    };

    beforeAll(async () => {
      imagesDir = await debianImagesDir();
      t = await makeCrunTarget({ imagesDir });
      const leaseId = newLeaseId();
      started.push(leaseId);
      a = await t.driver.start(
        { leaseId, image: 'debian' },
        { ...TEST_LIMITS, memoryMib: 256, pids: 128, diskMib: 128 },
        new Date(Date.now() + 600_000),
      );
    }, 600_000);

    afterAll(async () => {
      await Promise.allSettled(started.map((leaseId) => t?.driver.stop({ leaseId })));
      await t?.dispose();
    });

    it('is Debian 12 with python3, pip, venv, git and curl, in /root', async () => {
      const r = await bash(
        'cat /etc/debian_version; pwd; python3 -c \'import json; print(6*7)\'; git --version; curl --version | head -1; pip --version; echo "$LANG $HOME"',
      );
      expect(r.err).toBe('');
      const lines = r.out.split('\n');
      expect(lines[0]).toMatch(/^12\./);
      expect(lines[1]).toBe('/root');
      expect(lines[2]).toBe('42');
      expect(lines[3]).toMatch(/^git version 2\./);
      expect(lines[4]).toMatch(/^curl 7\./);
      expect(lines[5]).toMatch(/^pip \d+.* \(python 3\.11\)$/);
      expect(lines[6]).toBe('C.UTF-8 /root');
    });

    it('makes a venv and installs a wheel into it with pip, offline', async () => {
      const r = await bash(
        [
          'set -e',
          'python3 -m venv /tmp/venv',
          // A wheel made on the spot: pip installs what it is given, with no index.
          'mkdir -p /tmp/w/hello_alacarte-1.0.dist-info',
          'printf \'print("hello from a wheel")\\n\' > /tmp/w/hello_alacarte.py',
          "printf 'Metadata-Version: 2.1\\nName: hello-alacarte\\nVersion: 1.0\\n' > /tmp/w/hello_alacarte-1.0.dist-info/METADATA",
          "printf 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n' > /tmp/w/hello_alacarte-1.0.dist-info/WHEEL",
          ': > /tmp/w/hello_alacarte-1.0.dist-info/RECORD',
          'cd /tmp/w && python3 -m zipfile -c /tmp/hello_alacarte-1.0-py3-none-any.whl hello_alacarte.py hello_alacarte-1.0.dist-info',
          '/tmp/venv/bin/pip install --no-index -q /tmp/hello_alacarte-1.0-py3-none-any.whl',
          '/tmp/venv/bin/python -c "import hello_alacarte"',
        ].join('\n'),
      );
      expect(r.err).toBe('');
      expect(r.out).toBe('hello from a wheel\n');
    });

    it('installs a package with apt-get, as root in its user namespace', async () => {
      // A one-package repository made inside the sandbox (no network here): apt-get update and
      // install go through apt's methods and dpkg as any installation would.
      const r = await bash(
        [
          'set -e',
          'p=/tmp/pkg/usr/bin; mkdir -p $p /tmp/pkg/DEBIAN /srv/repo',
          "printf 'Package: hello-alacarte\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@example.org>\\nDescription: test\\n' > /tmp/pkg/DEBIAN/control",
          "printf '#!/bin/sh\\necho hello from apt\\n' > $p/hello-alacarte; chmod 755 $p/hello-alacarte",
          'dpkg-deb --build /tmp/pkg /srv/repo/hello.deb >/dev/null',
          'cd /srv/repo',
          '{ dpkg-deb -f hello.deb; echo "Filename: ./hello.deb"; echo "Size: $(stat -c %s hello.deb)"; echo "SHA256: $(sha256sum hello.deb | cut -d" " -f1)"; echo; } > Packages',
          "echo 'deb [trusted=yes] file:/srv/repo ./' > /etc/apt/sources.list.d/local.list",
          'apt-get update -qq -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/local.list -o Dir::Etc::sourceparts=- 2>&1',
          'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hello-alacarte >/dev/null 2>&1',
          'hello-alacarte',
          'dpkg -s hello-alacarte | grep Status',
        ].join('\n'),
      );
      expect(r.out, r.err).toBe('hello from apt\nStatus: install ok installed\n');
      expect(r.code).toBe(0);
    });

    it('keeps set-uid bits and owners of the image, and its files out of reach of writes', async () => {
      const r = await bash('stat -c "%a %U:%G" /usr/bin/passwd /etc/shadow /var/cache/apt; id -un');
      expect(r.out).toBe('4755 root:root\n640 root:shadow\n755 root:root\nroot\n');
      await bash('echo leak > /etc/leak; rm -f /usr/bin/git');
      expect(existsSync(join(imagesDir, 'debian/etc/leak'))).toBe(false);
      expect(existsSync(join(imagesDir, 'debian/usr/bin/git'))).toBe(true);
      // The build left nothing of the host that made it: not its resolver, not its name.
      expect(readFileSync(join(imagesDir, 'debian/etc/hostname'), 'utf8')).toBe('sandbox\n');
      expect(readFileSync(join(imagesDir, 'debian/etc/resolv.conf'), 'utf8')).toBe('');
    });

    it('opens an interactive bash in /root', async () => {
      const session = await t.driver.attach(a, { cols: 100, rows: 30 });
      let screen = '';
      session.stream.on('data', (b: Buffer) => {
        screen += b.toString('utf8');
      });
      await waitForShell(session.stream, () => screen);
      session.stream.write('echo "shell=$0 at $(pwd)"; exit\n');
      await session.exited;
      expect(screen).toContain('shell=/bin/bash at /root');
    });
  });
}
