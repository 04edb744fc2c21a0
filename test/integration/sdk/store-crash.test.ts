import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WalletStore } from '../../../src/wallet/wallet-store.js';
import { REPO_ROOT, tempDir } from '../../helpers/cli.js';

/**
 * A process that keeps moving 64 proofs between the balance and pending operations (as payments
 * do) is killed -9 at arbitrary moments; the file it leaves must always hold every proof exactly
 * once. Uses the built store (dist/), as the CLI does.
 */
const STORE = join(REPO_ROOT, 'dist', 'wallet', 'wallet-store.js');

const CHILD = `
const { WalletStore } = await import(process.argv[1]);
const s = WalletStore.open({ home: process.argv[2], newMnemonic: () => 'seed' });
if (s.proofs().length === 0 && s.ops().length === 0) {
  s.update((d) => { for (let i = 0; i < 64; i++) d.proofs.push({ mint: 'm', unit: 'sat', id: '00', amount: 1, secret: 's' + i, C: '02' }); });
}
process.stdout.write('ready\\n');
for (let n = 0; ; n++) {
  s.update((d) => {
    if (n % 2 === 0) {
      const moving = d.proofs.splice(0, 1 + (n % 5));
      d.ops.push({ id: 'op' + n, kind: 'payment', mint: 'm', unit: 'sat', createdAt: '', inputs: moving, counters: [] });
    } else {
      const op = d.ops.shift();
      if (op) d.proofs.push(...op.inputs);
    }
  });
}
`;

describe('wallet file under kill -9', () => {
  it.skipIf(!existsSync(STORE))('never loses or duplicates a proof (needs npm run build)', async () => {
    const home = tempDir('crash');
    for (let round = 0; round < 6; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, STORE, home]);
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 20 + round * 37));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      const s = WalletStore.open({ home, newMnemonic: () => 'unused' });
      const secrets = [...s.proofs(), ...s.ops().flatMap((o) => o.inputs)].map((p) => p.secret);
      s.close();
      expect(secrets).toHaveLength(64);
      expect(new Set(secrets).size).toBe(64);
    }
  });
});
