import { describe, expect, it } from 'vitest';
import { parseSide } from '../../../src/cli/renter/copy.js';
import { AlacarteError } from '../../../src/core/errors.js';
import { MAX_PATH_BYTES, parseFileMode, parseSandboxPath } from '../../../src/files/file-transfer.js';
import { commitFileCommand, readPathCommand, stageFileCommand } from '../../../src/files/sandbox-commands.js';

const code = (run: () => unknown) => {
  try {
    run();
    return 'ok';
  } catch (err) {
    return err instanceof AlacarteError ? err.code : String(err);
  }
};

describe('files API: paths and modes', () => {
  it('takes absolute paths (.. and all) up to PATH_MAX, and refuses the rest with invalid_request', () => {
    expect(parseSandboxPath('/root/a b/../ü')).toBe('/root/a b/../ü');
    expect(parseSandboxPath(`/${'a'.repeat(MAX_PATH_BYTES - 1)}`)).toHaveLength(MAX_PATH_BYTES);
    for (const bad of [
      undefined,
      '',
      'root/x',
      './x',
      `/${'a'.repeat(MAX_PATH_BYTES)}`,
      '/a\0b',
      '/\ud800',
      ['/a'],
    ]) {
      expect(
        code(() => parseSandboxPath(bad)),
        String(bad),
      ).toBe('invalid_request');
    }
  });

  it('takes 3 or 4 octal digits as a mode', () => {
    expect(parseFileMode(undefined)).toBeUndefined();
    expect(parseFileMode('0755')).toBe('0755');
    expect(parseFileMode('644')).toBe('644');
    for (const bad of ['', '8', '0999', '12345', 'rwx', ['644']])
      expect(code(() => parseFileMode(bad))).toBe('invalid_request');
  });

  it('passes the path as an argument, never inside the script', () => {
    const hostile = '/tmp/$(reboot)`id`;"\'\n';
    const stage = stageFileCommand(hostile, { upload: 'abc', size: 3 });
    expect(stage.slice(0, 3)).toEqual(['/run/alacarte/bin/busybox', 'sh', '-c']);
    expect(stage[3]).not.toContain(hostile);
    expect(stage.slice(5)).toEqual([hostile, 'abc', '3']);
    const commit = commitFileCommand(hostile, { upload: 'abc' });
    expect(commit[3]).not.toContain(hostile);
    expect(commit.slice(5)).toEqual([hostile, '', 'abc']);
    const read = readPathCommand(hostile, 1024);
    expect(read[3]).not.toContain(hostile);
    expect(read.slice(5)).toEqual([hostile, '1024']);
  });
});

describe('alacarte cp: which side is which', () => {
  it('reads ID:/path as a lease, anything else as local; a relative remote path is under /root', () => {
    expect(parseSide('lse_abc:/srv/x')).toEqual({ kind: 'remote', lease: 'lse_abc', path: '/srv/x' });
    expect(parseSide('lse_abc:notes.txt')).toEqual({
      kind: 'remote',
      lease: 'lse_abc',
      path: '/root/notes.txt',
    });
    expect(parseSide('lse_abc:')).toEqual({ kind: 'remote', lease: 'lse_abc', path: '/root/' });
    // `~/` is the home directory, as scp's remote shell expands it (it made a directory named `~`).
    expect(parseSide('lse_abc:~/x.txt')).toEqual({ kind: 'remote', lease: 'lse_abc', path: '/root/x.txt' });
    expect(parseSide('lse_abc:~')).toEqual({ kind: 'remote', lease: 'lse_abc', path: '/root/' });
    expect(parseSide('lse_abc:~x')).toEqual({ kind: 'remote', lease: 'lse_abc', path: '/root/~x' });
    expect(parseSide('./lse_abc:x')).toEqual({ kind: 'local', path: './lse_abc:x' });
    expect(parseSide('/tmp/a:b')).toEqual({ kind: 'local', path: '/tmp/a:b' });
    expect(parseSide('data.csv')).toEqual({ kind: 'local', path: 'data.csv' });
    expect(parseSide('-')).toEqual({ kind: 'local', path: '-' });
  });
});
