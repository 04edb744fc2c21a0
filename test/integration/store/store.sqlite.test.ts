import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openStore } from '../../../src/store/database.js';
import { describeStoreContract } from './store.contract.js';

// A file, not :memory:, so that a second connection sees the same store (as another process would).
const dir = mkdtempSync(join(tmpdir(), 'alacarte-store-'));
const path = join(dir, 'alacarte.sqlite');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeStoreContract('SQLite', { open: () => openStore(path), connect: () => openStore(path) });
