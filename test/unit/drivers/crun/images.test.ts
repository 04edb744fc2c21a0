import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_IMAGE_CONFIG, fromOciConfig, leaseArgv } from '../../../../src/drivers/crun/image-config.js';
import { parseRef } from '../../../../src/drivers/crun/image-pull.js';
import { ImageError } from '../../../../src/drivers/crun/image-store.js';
import { shiftOwnership } from '../../../../src/drivers/crun/preflight.js';

describe('image references', () => {
  it('takes registry references, with or without docker://, and names the image after them', () => {
    expect(parseRef('docker.io/library/python:3.12-slim')).toEqual({
      source: 'docker://docker.io/library/python:3.12-slim',
      transport: 'docker',
      defaultName: 'python-3.12-slim',
    });
    expect(parseRef('docker://127.0.0.1:5000/test/img:1').defaultName).toBe('img-1');
    expect(parseRef('127.0.0.1:5000/test/img').source).toBe('docker://127.0.0.1:5000/test/img');
    expect(parseRef('127.0.0.1:5000/test/img').defaultName).toBe('img');
    expect(parseRef(`alpine@sha256:${'a'.repeat(64)}`).defaultName).toBe('alpine');
  });

  it('refuses what is not a reference, or reads local files through another transport', () => {
    for (const bad of [
      '',
      'with space',
      '-rf',
      'UPPER/Case:1',
      'dir:/etc',
      'docker-archive:/x.tar',
      'a/../b',
      'x'.repeat(600),
    ])
      expect(() => parseRef(bad), bad).toThrow(ImageError);
    expect(() => parseRef('oci:/nonexistent-layout:1')).toThrow(/not an OCI image layout/);
  });
});

describe('image config', () => {
  it('keeps Env, WorkingDir, Entrypoint and Cmd of an OCI config, and drops variables no shell can hold', () => {
    const { config, dropped } = fromOciConfig(
      {
        config: {
          Env: ['PATH=/usr/local/bin:/usr/bin', 'EMPTY=', 'A=b=c', 'bad-name=1', 'NOVALUE'],
          WorkingDir: '/srv',
          Entrypoint: ['/entry.sh'],
          Cmd: ['serve', 42],
        },
      },
      { description: 'd', source: 's' },
    );
    expect(config.env).toEqual({ PATH: '/usr/local/bin:/usr/bin', EMPTY: '', A: 'b=c', NOVALUE: '' });
    expect(dropped).toEqual(['bad-name']);
    expect(config.working_dir).toBe('/srv');
    expect(config.entrypoint).toEqual(['/entry.sh']);
    expect(config.cmd).toEqual(['serve']);
    expect(fromOciConfig({}, { description: '', source: '' }).config.working_dir).toBe('/');
  });

  it('runs a lease as docker run does: entrypoint, then the command or else the cmd', () => {
    const c = { ...DEFAULT_IMAGE_CONFIG, entrypoint: ['/entry'], cmd: ['default'] };
    expect(leaseArgv(c, undefined)).toEqual(['/entry', 'default']);
    expect(leaseArgv(c, ['mine', 'x'])).toEqual(['/entry', 'mine', 'x']);
    expect(leaseArgv(DEFAULT_IMAGE_CONFIG, undefined)).toEqual([]);
  });
});

describe('shifting owners of an image for user namespaces', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('moves each inode once, never through a link, and keeps set-uid bits', () => {
    dir = mkdtempSync(join(tmpdir(), 'alacarte-shift-'));
    const outside = join(dir, 'outside');
    writeFileSync(outside, 'host file');
    const root = join(dir, 'root');
    mkdirSync(join(root, 'bin'), { recursive: true });
    writeFileSync(join(root, 'bin/a'), 'x');
    linkSync(join(root, 'bin/a'), join(root, 'bin/b'));
    writeFileSync(join(root, 'bin/su'), 'x');
    chownSync(join(root, 'bin/su'), 0, 42);
    chmodSync(join(root, 'bin/su'), 0o4755);
    symlinkSync(outside, join(root, 'bin/escape'));
    shiftOwnership(root, 1_000_000);
    expect(statSync(join(root, 'bin/a')).uid).toBe(1_000_000);
    expect(statSync(join(root, 'bin/b')).uid).toBe(1_000_000);
    expect(statSync(join(root, 'bin/su'))).toMatchObject({ uid: 1_000_000, gid: 1_000_042 });
    expect(statSync(join(root, 'bin/su')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(root, 'bin/escape')).uid).toBe(1_000_000);
    expect(statSync(outside).uid).toBe(0);
  });

  it('refuses a tree with ids beyond the sandboxes range', () => {
    dir = mkdtempSync(join(tmpdir(), 'alacarte-shift-'));
    writeFileSync(join(dir, 'f'), 'x');
    chownSync(join(dir, 'f'), 70_000, 0);
    expect(() => shiftOwnership(dir, 1_000_000)).toThrow(/outside the sandboxes' 65536 ids/);
  });
});
