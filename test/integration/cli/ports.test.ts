import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServedNode, serveNode, tempDir } from '../../helpers/cli.js';
import { crunSkipReason } from '../drivers/crun-target.js';
import { runCli } from './run-cli.js';

/** `alacarte rent --port`, `exec --background` and `leases` against a served node. Needs `npm run build`. */
describe.skipIf(crunSkipReason)(
  'alacarte CLI: published ports and background commands',
  { timeout: 240_000 },
  () => {
    let node: ServedNode;
    beforeAll(async () => {
      node = await serveNode({ dataDir: tempDir('cli-ports-node') });
    }, 120_000);
    afterAll(async () => {
      await node?.stop();
    });

    it('rent shows the port URL, exec --background starts a server there, leases lists it', async () => {
      const me = { home: tempDir('cli-ports-home'), url: node.url };
      expect((await runCli(['wallet', 'topup', '200'], me)).code).toBe(0);
      const rent = await runCli(['rent', '--offer', 'small', '--for', '10m', '--port', '8080'], me);
      expect(rent.code).toBe(0);
      const id = /lease (lse_\S+) running/.exec(rent.stdout)?.[1] ?? '';
      const url = `${node.url}/v1/leases/${id}/ports/8080/`;
      expect(rent.stdout).toContain(`port 8080: ${url}`);

      const bg = await runCli(
        ['exec', id, '--background', '--', 'httpd', '-f', '-p', '8080', '-h', '/etc'],
        me,
      );
      expect(bg.code).toBe(0);
      expect(bg.stdout).toMatch(/^started in the background: pid \d+ \(output discarded\)\n$/);
      const page = await fetch(`${url}passwd`);
      expect(page.status).toBe(200);

      const missing = await runCli(['exec', id, '--background', '--', 'no-such-thing'], me);
      expect(missing.code).toBe(127);
      expect(missing.stderr).toContain('no-such-thing: not found');

      const listed = await runCli(['leases'], me);
      expect(listed.stdout).toContain(`${id} port 8080: ${url}`);
    });
  },
);
