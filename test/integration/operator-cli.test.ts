import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type ServedNode, serveNode } from '../helpers/cli.js';

const OPERATOR = 'operator-token-for-cli-tests-0123456789';

function alacarte(args: string[]): string {
  return execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env } });
}

describe('operator commands', () => {
  let node: ServedNode;
  beforeAll(async () => {
    node = await serveNode({ env: { ALACARTE_OPERATOR_TOKEN: OPERATOR } });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('alacarte ledger prints the same books as the operator route', async () => {
    const fromCli = JSON.parse(alacarte(['ledger', '--data', node.dataDir, '--json'])) as Record<
      string,
      unknown
    >;
    const fromHttp = await fetch(`${node.url}/v1/operator/ledger`, {
      headers: { authorization: `Bearer ${OPERATOR}` },
    }).then((r) => r.json());
    expect(fromCli).toEqual(fromHttp);
    expect(fromCli).toMatchObject({ unit: 'sat', received: 0, charged: 0, refunded: 0, held: 0 });
    // Money per mint: the own mint's figures apart from each trusted mint's (none configured here).
    const zero = { received: 0, charged: 0, refunded: 0, held: 0, bounced: 0 };
    expect(fromCli).toMatchObject({ bounced: 0, by_mint: { own: zero, trusted: [] } });
    const text = alacarte(['ledger', '--data', node.dataDir]);
    expect(text).toContain('(balanced)');
    expect(text).toContain('at own mint: received 0 = charged 0 + refunded 0 + held 0');
  });

  it('refuses the operator route without the operator token', async () => {
    for (const auth of [undefined, 'Bearer nope', `Bearer ${OPERATOR}x`]) {
      const res = await fetch(`${node.url}/v1/operator/ledger`, {
        headers: auth ? { authorization: auth } : {},
      });
      expect(res.status).toBe(401);
    }
  });

  it('alacarte mint rotate makes a new active keyset that the running node serves; the old one stays, inactive', async () => {
    type Keysets = { keysets: Array<{ id: string; active: boolean }> };
    const before = (await fetch(`${node.mintUrl}/v1/keysets`).then((r) => r.json())) as Keysets;
    const oldActive = before.keysets.find((k) => k.active)?.id;
    const out = alacarte(['mint', 'rotate', '--data', node.dataDir]);
    const newId = /new active keyset: (\S+)/.exec(out)?.[1];
    expect(newId).toBeDefined();
    expect(newId).not.toBe(oldActive);
    // The running node re-reads keysets at most every few seconds.
    let after: Keysets = before;
    for (let i = 0; i < 40 && !after.keysets.some((k) => k.id === newId && k.active); i++) {
      await new Promise((r) => setTimeout(r, 250));
      after = (await fetch(`${node.mintUrl}/v1/keysets`).then((r) => r.json())) as Keysets;
    }
    expect(after.keysets.find((k) => k.id === newId)?.active).toBe(true);
    expect(after.keysets.find((k) => k.id === oldActive)?.active).toBe(false);
  });
});
