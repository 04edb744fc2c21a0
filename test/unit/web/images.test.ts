import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { leaseRequestInputs } from '../../../src/agents/tool-inputs.js';
import { DEFAULT_IMAGE } from '../../../src/core/lease-request.js';
import { defaultImage, DEFAULT_IMAGE as PAGE_DEFAULT } from '../../../web/src/images.js';

/** A lease rented without naming an image is the same one from the CLI, the page and an agent. */
describe('the default image', () => {
  it('is busybox for the CLI, the web page and the MCP rent tool', () => {
    expect(DEFAULT_IMAGE).toBe('busybox');
    expect(PAGE_DEFAULT).toBe(DEFAULT_IMAGE);
    const rent = z.object(leaseRequestInputs).parse({ offer: 'small', seconds: 60 });
    expect(rent.image).toBe(DEFAULT_IMAGE);
  });

  it('is what the page selects when the node offers it, whatever the order', () => {
    expect(defaultImage(['debian', 'busybox', 'python-3.12-slim'])).toBe('busybox');
    expect(defaultImage(['busybox', 'debian'])).toBe('busybox');
  });

  it('falls back to the node’s first image when the node has no busybox', () => {
    expect(defaultImage(['debian', 'python-3.12-slim'])).toBe('debian');
    expect(defaultImage([])).toBeUndefined();
  });
});
