import { afterAll } from 'vitest';
import { removeServedSandboxes } from './cli.js';

// A setup file (vitest.config.ts): registered before each test file's own hooks, so it runs after
// them (vitest runs after-hooks in reverse order), once the file has stopped its nodes.
afterAll(removeServedSandboxes, 120_000);
