import { spawnSync } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, tempDir } from '../../helpers/cli.js';
import { type LeaseTestNode, startLeaseNode } from '../../helpers/lease-node.js';
import { AGENT_TOOL_NAMES, bodyOf, callTool } from '../../helpers/mcp.js';
import { runCli, runJson } from '../cli/run-cli.js';
import { crunSkipReason } from '../drivers/crun-target.js';

/**
 * `alacarte mcp` (API.md "Agents"): the built CLI spawned by the official MCP client over stdio,
 * paying a real node from its local wallet within the spend cap. Needs the built dist.
 */

let t: LeaseTestNode;
let client: Client;
let stderr = '';
const home = tempDir('mcp-home');

const call = (name: string, args: Record<string, unknown> = {}) => callTool(client, name, args);

/** The wallet balance as `alacarte wallet balance` shows it (the MCP server does not hold the wallet). */
async function balance(): Promise<number> {
  return (await runJson<{ balance: number }>(['wallet', 'balance'], { home, url: t.url })).balance;
}

describe.skipIf(crunSkipReason)('alacarte mcp, the renter side over stdio', { timeout: 240_000 }, () => {
  beforeAll(async () => {
    t = await startLeaseNode();
    const topup = await runCli(['wallet', 'topup', '300'], { home, url: t.url });
    expect(topup.code, topup.stderr).toBe(0);
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp', '--url', t.url, '--max-per-call', '150', '--max-total', '200'],
      env: { ...(process.env as Record<string, string>), ALACARTE_HOME: home },
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    client = new Client({ name: 'mcp-stdio-test', version: '1.0.0' });
    await client.connect(transport);
  });
  afterAll(async () => {
    await client?.close();
    await t?.close();
  });

  it('lists the nine tools and says its cap', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(AGENT_TOOL_NAMES);
    expect(tools.find((tool) => tool.name === 'rent')?.description).toContain('at most 150 sat a call');
    expect(stderr).toContain('spend cap 150 sat a call, 200 sat in all');
  });

  it('refuses a rent over the per-call cap and nothing leaves the wallet', async () => {
    expect(await balance()).toBe(300);
    // Three hours of `small` (60 sat an hour) is 180 sat, over the 150 a call.
    const over = await call('rent', { offer: 'small', seconds: 3 * 3600 });
    expect(over.isError).toBe(true);
    expect(bodyOf(over)).toMatchObject({ error: 'spend_cap', asked: 180, allowed: 150, spent: 0 });
    expect(bodyOf(over).message).toBe(
      'the node asks 180 sat; this session may pay at most 150 sat a call (--max-per-call): nothing was paid',
    );
    expect(await balance()).toBe(300);
  });

  it('rents within the cap, runs a command, moves a file, then refuses what the total no longer covers', async () => {
    const rented = await call('rent', { offer: 'small', seconds: 7200 });
    expect(rented.isError, rented.content[0]?.text).toBeFalsy();
    const lease = bodyOf(rented);
    expect(lease).toMatchObject({ state: 'running', offer: 'small', balance: 180, spent: 120, cap_left: 80 });
    // The credential stays in the lease book: the agent names the lease by its id.
    expect(lease.token).toBeUndefined();
    const id = lease.id as string;

    expect(bodyOf(await call('exec', { lease_id: id, command: ['echo', 'hi'] }))).toMatchObject({
      exit_code: 0,
      stdout: 'hi\n',
    });
    await call('write_file', { lease_id: id, path: '/root/a.txt', content: 'from the agent\n' });
    expect(bodyOf(await call('read_file', { lease_id: id, path: '/root/a.txt' })).content).toBe(
      'from the agent\n',
    );
    // 2 MB of NUL bytes: the node's 1 MiB as JSON (six characters a byte), twice over, was one
    // message the stock client refused, closing the session. Cut for an agent, said so.
    const zeros = await call('exec', { lease_id: id, command: ['head', '-c', '2000000', '/dev/zero'] });
    expect(zeros.isError, zeros.content[0]?.text?.slice(0, 200)).toBeFalsy();
    expect(bodyOf(zeros)).toMatchObject({ exit_code: 0, truncated: true, stdout: '\0'.repeat(128 * 1024) });
    expect(bodyOf(await call('exec', { lease_id: id, command: ['echo', 'still here'] })).stdout).toBe(
      'still here\n',
    );

    // 120 more would pass the per-call cap but not the 80 left of the total.
    const second = await call('rent', { offer: 'small', seconds: 7200 });
    expect(second.isError).toBe(true);
    expect(bodyOf(second)).toMatchObject({
      error: 'spend_cap',
      asked: 120,
      allowed: 80,
      message:
        'the node asks 120 sat; this session has 80 sat left of its 200 sat in all (--max-total; 120 sat spent): nothing was paid',
    });
    const extendOver = await call('extend', { lease_id: id, seconds: 2 * 3600 });
    expect(bodyOf(extendOver)).toMatchObject({ error: 'spend_cap', asked: 120, allowed: 80 });
    expect(await balance()).toBe(180);

    // Within what is left: an hour more for 60.
    const extended = bodyOf(await call('extend', { lease_id: id, seconds: 3600 }));
    expect(extended).toMatchObject({ balance: 120, spent: 180, cap_left: 20 });

    const stopped = bodyOf(await call('stop', { lease_id: id }));
    expect(stopped.state).toBe('stopped');
    expect(stopped.refund).toBeUndefined();
    const refunded = stopped.refunded as number;
    expect(refunded).toBeGreaterThan(170);
    // The refund is in the wallet; it gives the agent no new room to spend.
    expect(await balance()).toBe(120 + refunded);
    expect(stopped).toMatchObject({ balance: 120 + refunded, spent: 180, cap_left: 20 });
  });

  it('answers a node error with its code, and an unknown lease as such', async () => {
    const bad = await call('quote', { offer: 'no-such-offer', seconds: 600 });
    expect(bad.isError).toBe(true);
    expect(bodyOf(bad).error).toBe('invalid_request');
    const unknown = await call('exec', { lease_id: 'lse_unknown', command: ['true'] });
    expect(bodyOf(unknown).error).toBe('unknown_lease');
    // A mistyped argument: the HTTP API's code and words, as the node's own MCP server answers.
    expect(bodyOf(await call('quote', { offer: 'small', seconds: '600' }))).toEqual({
      error: 'invalid_request',
      message: 'seconds: Invalid input: expected number, received string',
    });
  });
});

describe('alacarte mcp usage', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, [CLI, 'mcp', ...args], {
      encoding: 'utf8',
      env: { ...process.env, ALACARTE_HOME: tempDir('mcp-usage') },
      input: '',
    });

  it('will not serve without a total spend cap, with a cap that is not a whole amount, or a per-call cap above the total', () => {
    const none = run(['--url', 'http://198.51.100.7:8402']);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('give the spend cap: --max-total SAT');
    expect(none.stdout).toBe('');
    const bad = run(['--max-total', '10.5']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--max-total wants a whole amount of sat, got '10.5'");
    const perCall = run(['--max-total', '10', '--max-per-call', '-1']);
    expect(perCall.status).toBe(2);
    // A per-call cap above the total could never apply: said, not taken silently.
    const above = run(['--max-total', '10', '--max-per-call', '20']);
    expect(above.status).toBe(2);
    expect(above.stderr).toContain('--max-per-call (20 sat) is more than --max-total (10 sat)');
  });

  it('explains the caps in its help', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('alacarte mcp --max-total SAT [--max-per-call SAT] [--url URL]');
    expect(help.stdout).toContain('refused with the tool error spend_cap; nothing is paid');
  });
});
