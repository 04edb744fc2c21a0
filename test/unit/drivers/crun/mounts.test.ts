import { describe, expect, it } from 'vitest';
import { mountsUnder } from '../../../../src/drivers/crun/mounts.js';

const mountinfo = [
  '22 1 0:21 / / rw - ext4 /dev/vda rw',
  '40 22 0:35 / /srv/rt/lse_a/layer rw - tmpfs tmpfs rw',
  '41 22 0:36 / /srv/rt/lse_a/rootfs rw - overlay overlay rw',
  '42 22 0:37 / /srv/rt/lse_ab/layer rw - tmpfs tmpfs rw',
  '43 22 0:38 / /srv/rt/with\\040space rw - tmpfs tmpfs rw',
].join('\n');

describe('mountsUnder', () => {
  it('finds the mounts inside a directory, not those of a sibling with a longer name', () => {
    expect(mountsUnder('/srv/rt/lse_a', mountinfo).sort()).toEqual([
      '/srv/rt/lse_a/layer',
      '/srv/rt/lse_a/rootfs',
    ]);
  });

  it('decodes octal escapes and orders deepest first', () => {
    expect(mountsUnder('/srv/rt/with space', mountinfo)).toEqual(['/srv/rt/with space']);
    expect(mountsUnder('/srv', mountinfo)[0]?.length).toBeGreaterThanOrEqual(
      mountsUnder('/srv', mountinfo).at(-1)?.length ?? 0,
    );
  });
});
