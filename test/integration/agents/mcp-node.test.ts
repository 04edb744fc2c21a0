import { CheckStateEnum, type Proof, type Wallet } from '@cashu/cashu-ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allUnspent,
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';
import { AGENT_TOOL_NAMES, bodyOf, callTool } from '../../helpers/mcp.js';
import { crunSkipReason } from '../drivers/crun-target.js';

/**
 * The node's MCP server (API.md "Agents", `POST /mcp`) driven by the official MCP client over
 * streamable HTTP: a real node, its mint, crun sandboxes, and a cashu-ts wallet paying.
 */

let t: LeaseTestNode;
let client: Client;

const call = (name: string, args: Record<string, unknown> = {}) => callTool(client, name, args);

/** Redeems a token the node handed back with cashu-ts: proves it is real, unspent ecash. */
async function redeem(wallet: Wallet, token: string): Promise<Proof[]> {
  return wallet.receive(token);
}

describe.skipIf(crunSkipReason)('POST /mcp, the node as an MCP server', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    t = await startLeaseNode();
    client = new Client({ name: 'mcp-node-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`)));
  });
  afterAll(async () => {
    await client?.close();
    await t?.close();
  });

  it('lists the nine tools, each with an input schema', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(AGENT_TOOL_NAMES);
    const rent = tools.find((tool) => tool.name === 'rent');
    expect(rent?.inputSchema.required).toEqual(expect.arrayContaining(['payment', 'offer', 'seconds']));
    expect(rent?.description).toContain('Cashu token or, where the node takes it, an x402 payment');
  });

  it('answers offers and quote as GET /v1/offers and /v1/quote do', async () => {
    const offers = bodyOf(await call('offers'));
    const http = (await (await fetch(`${t.url}/v1/offers`)).json()) as Record<string, unknown>;
    expect(offers.payment).toEqual(http.payment);
    expect(offers.images).toEqual(http.images);
    expect(bodyOf(await call('quote', { offer: 'small', seconds: 7200 }))).toEqual({
      offer: 'small',
      seconds: 7200,
      amount: 120,
      unit: 'sat',
    });
    const bad = await call('quote', { offer: 'no-such-offer', seconds: 7200 });
    expect(bad.isError).toBe(true);
    expect(bodyOf(bad).error).toBe('invalid_request');
  });

  it('refuses a bad token with the node error code and charges nothing', async () => {
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
    const { token, send } = await tokenOf(wallet, t.mintUrl, proofs, 10);
    // Too little for two hours of `small` (120 sat): the node refuses it and keeps nothing.
    const short = await call('rent', { payment: token, offer: 'small', seconds: 7200, image: 'busybox' });
    expect(short.isError).toBe(true);
    expect(bodyOf(short)).toMatchObject({ error: 'insufficient_amount' });
    expect(await allUnspent(wallet, send)).toBe(true);

    // No payment: the price, and what `payment` takes; not the L402 invoice, which a tool call
    // cannot pay (its credential goes in an Authorization header).
    const none = await call('rent', { payment: '', offer: 'small', seconds: 7200 });
    expect(none.isError).toBe(true);
    expect(bodyOf(none)).toMatchObject({
      error: 'payment_required',
      amount: 120,
      unit: 'sat',
      message: 'this costs 120 sat: pass a Cashu token worth it as `payment`',
    });
    expect(bodyOf(none).l402).toBeUndefined();

    const garbage = await call('rent', { payment: 'cashuBnot-a-token', offer: 'small', seconds: 7200 });
    expect(garbage.isError).toBe(true);
    expect(bodyOf(garbage).error).toBe('invalid_token');

    // A body the HTTP API refuses is refused alike, before the token is looked at.
    const tooShort = await call('rent', { payment: token, offer: 'small', seconds: 1 });
    expect(tooShort.isError).toBe(true);
    expect(bodyOf(tooShort).error).toBe('invalid_request');
    expect(await allUnspent(wallet, send)).toBe(true);

    // Arguments of the wrong type never reach the tool: refused as the HTTP API refuses such a
    // body (same code, same words), not in the MCP library's own text; nothing is taken.
    const typed = await call('rent', { payment: token, offer: 'small', seconds: 'two hours' });
    expect(typed.isError).toBe(true);
    const http = await postJson(`${t.url}/v1/leases`, {
      offer: 'small',
      seconds: 'two hours',
      image: 'busybox',
    });
    expect(http.status).toBe(400);
    expect(bodyOf(typed)).toEqual({ error: 'invalid_request', message: http.body.message });
    expect(http.body).toMatchObject({
      error: 'invalid_request',
      message: expect.stringMatching(/^seconds: /),
    });
    // A missing argument, a wrong type elsewhere, an unknown tool: the same stable code.
    expect(bodyOf(await call('quote', { offer: 'small' }))).toEqual({
      error: 'invalid_request',
      message: 'seconds: required',
    });
    const ports = await call('rent', { payment: token, offer: 'small', seconds: 600, ports: ['80'] });
    expect(bodyOf(ports)).toMatchObject({
      error: 'invalid_request',
      message: expect.stringMatching(/^ports\.0: /),
    });
    expect(bodyOf(await call('no_such_tool', {}))).toMatchObject({ error: 'invalid_request' });
    expect(await allUnspent(wallet, send)).toBe(true);
  });

  it('answers malformed MCP requests with a 4xx, never a 5xx', async () => {
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${t.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body,
      });
    const broken = await post('{"jsonrpc": "2.0", ');
    expect(broken.status).toBe(400);
    expect(await broken.json()).toEqual({
      jsonrpc: '2.0',
      error: { code: -32700, message: 'Parse error: the body is not JSON' },
      id: null,
    });
    const notRpc = await post('{"hello": "world"}');
    expect(notRpc.status).toBeGreaterThanOrEqual(400);
    expect(notRpc.status).toBeLessThan(500);
    const noAccept = await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), {
      accept: 'text/html',
    });
    expect(noAccept.status).toBe(406);
    const unknownTool = await post(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'nope', arguments: {} },
      }),
    );
    expect(unknownTool.status).toBe(200);
    const huge = await post(
      JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'x', params: { a: 'x'.repeat(2 * 1024 * 1024) } }),
    );
    expect(huge.status).toBe(413);
    const get = await fetch(`${t.url}/mcp`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    // Every other method is told the one it takes (GET and DELETE were listed while answering 405).
    for (const method of ['DELETE', 'PUT']) {
      const other = await fetch(`${t.url}/mcp`, { method });
      expect(other.status).toBe(405);
      expect(other.headers.get('allow')).toBe('POST');
    }
  });

  it('rents, runs a command, writes and reads a file, extends and stops with a redeemable refund', async () => {
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 400);
    const pay = await tokenOf(wallet, t.mintUrl, proofs, 128);
    const rented = await call('rent', {
      payment: pay.token,
      offer: 'small',
      seconds: 7200,
      image: 'busybox',
    });
    expect(rented.isError).toBeFalsy();
    const lease = bodyOf(rented);
    expect(lease).toMatchObject({ state: 'running', offer: 'small', paid: 128, unit: 'sat' });
    expect(lease.id).toMatch(/^lse_/);
    const id = lease.id as string;
    const token = lease.token as string;
    expect(typeof token).toBe('string');
    // 128 paid for a 120 price: the change is 8 sat of real ecash.
    expect(typeof lease.change).toBe('string');
    expect(sumOf(await redeem(wallet, lease.change as string))).toBe(8);
    expect(await allUnspent(wallet, pay.send)).toBe(false);

    // The same token again: the same lease, no second charge.
    const replay = bodyOf(
      await call('rent', { payment: pay.token, offer: 'small', seconds: 7200, image: 'busybox' }),
    );
    expect(replay.id).toBe(id);

    const hi = bodyOf(await call('exec', { lease_id: id, token, command: ['echo', 'hi'] }));
    expect(hi).toEqual({ exit_code: 0, stdout: 'hi\n', stderr: '', truncated: false });
    // An agent gets 128 KiB of each stream (the API's 1 MiB of NULs, as JSON twice, was more than
    // the stock client reads in one message); base64 cut at a whole group.
    const zeros = bodyOf(
      await call('exec', { lease_id: id, token, command: ['head', '-c', '2000000', '/dev/zero'] }),
    );
    expect(zeros).toMatchObject({ exit_code: 0, truncated: true, stdout: '\0'.repeat(128 * 1024) });
    const encoded = bodyOf(
      await call('exec', {
        lease_id: id,
        token,
        command: ['head', '-c', '200000', '/dev/zero'],
        encoding: 'base64',
      }),
    );
    expect([encoded.truncated, String(encoded.stdout).length]).toEqual([true, 128 * 1024]);

    const wrong = await call('exec', { lease_id: id, token: 'not-the-credential', command: ['true'] });
    expect(wrong.isError).toBe(true);
    expect(bodyOf(wrong).error).toBe('unauthorized');

    const written = bodyOf(
      await call('write_file', { lease_id: id, token, path: '/root/notes/hello.txt', content: 'grüße\n' }),
    );
    expect(written).toEqual({ path: '/root/notes/hello.txt', size: Buffer.byteLength('grüße\n') });
    const read = bodyOf(await call('read_file', { lease_id: id, token, path: '/root/notes/hello.txt' }));
    expect(read).toMatchObject({ kind: 'file', encoding: 'utf8', content: 'grüße\n' });
    const bytes = Buffer.from([0, 255, 1, 2]);
    await call('write_file', {
      lease_id: id,
      token,
      path: '/root/bin.dat',
      content: bytes.toString('base64'),
      encoding: 'base64',
    });
    const back = bodyOf(
      await call('read_file', { lease_id: id, token, path: '/root/bin.dat', encoding: 'base64' }),
    );
    expect(back.content).toBe(bytes.toString('base64'));
    const missing = await call('read_file', { lease_id: id, token, path: '/root/absent' });
    expect(missing.isError).toBe(true);
    expect(bodyOf(missing).error).toBe('not_found');

    // Over what one tool result carries (1 MiB): refused, pointing to the Files API.
    await call('exec', {
      lease_id: id,
      token,
      command: ['sh', '-c', 'head -c 1100000 /dev/zero > /root/big'],
    });
    const big = await call('read_file', { lease_id: id, token, path: '/root/big' });
    expect(big.isError).toBe(true);
    expect(bodyOf(big)).toMatchObject({ error: 'payload_too_large' });
    expect(bodyOf(big).message).toContain('/v1/leases/{id}/files');

    const before = bodyOf(await call('status', { lease_id: id, token }));
    const more = await tokenOf(wallet, t.mintUrl, pay.keep, 60);
    const extended = bodyOf(await call('extend', { lease_id: id, seconds: 3600, payment: more.token }));
    expect(Date.parse(extended.expires_at as string) - Date.parse(before.expires_at as string)).toBe(
      3600_000,
    );
    expect(extended.change).toBeNull();

    const stopped = bodyOf(await call('stop', { lease_id: id, token }));
    expect(stopped.state).toBe('stopped');
    expect(stopped.refunded as number).toBeGreaterThan(170);
    const refund = await redeem(wallet, stopped.refund as string);
    expect(sumOf(refund)).toBe(stopped.refunded);
    const states = await wallet.checkProofsStates(refund);
    expect(states.every((s) => s.state === CheckStateEnum.UNSPENT)).toBe(true);
    // The same stop again: the same answer, no second refund.
    const again = bodyOf(await call('stop', { lease_id: id, token }));
    expect(again.refund).toBe(stopped.refund);

    const after = await call('exec', { lease_id: id, token, command: ['true'] });
    expect(after.isError).toBe(true);
    expect(bodyOf(after).error).toBe('lease_not_running');
  });
});
