import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { socketKeyboard, waitForShell } from '../../helpers/terminal.js';
import { crunSkipReason } from '../drivers/crun-target.js';

describe.skipIf(crunSkipReason)('background jobs started from an attach shell', () => {
  let t: LeaseTestNode;
  beforeAll(async () => {
    t = await startLeaseNode();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('keep running after the terminal that started them has closed', async () => {
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
    const { token } = await tokenOf(wallet, t.mintUrl, proofs, 10);
    const res = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 600, image: 'busybox', ports: [8080] },
      { 'x-cashu': token },
    );
    const lease = res.body as { id: string; token: string; ports: Record<string, string> };
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/leases/${lease.id}/attach`, [
      `bearer.${lease.token}`,
    ]);
    let screen = '';
    ws.on('message', (d: Buffer) => {
      screen += d.toString('utf8');
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    await waitForShell(socketKeyboard(ws), () => screen);
    // A server that logs every request to the terminal, and a job that keeps printing to it. (The
    // quotes keep "started" out of the echo of the typed line: only the command prints it.)
    ws.send(
      Buffer.from(
        'httpd -f -v -p 8080 -h /etc & sh -c \'while :; do sleep 1; echo tick; done\' & echo start""ed\r',
      ),
    );
    for (let i = 0; i < 50 && !/started\r*\n/.test(screen); i++) await sleep(100);
    expect(screen).toMatch(/started\r*\n/);
    ws.close();
    await new Promise((resolve) => ws.once('close', resolve));
    // The server keeps answering once its terminal is gone; a loaded machine may be slow to show it.
    await sleep(3000);
    let page = await fetch(`${lease.ports['8080']}passwd`);
    for (let i = 0; i < 40 && page.status !== 200; i++) {
      await sleep(500);
      page = await fetch(`${lease.ports['8080']}passwd`);
    }
    const inside = async (script: string) =>
      String(
        (
          await postJson(
            `${t.url}/v1/leases/${lease.id}/exec`,
            { command: ['sh', '-c', script] },
            { authorization: `Bearer ${lease.token}` },
          )
        ).body.stdout,
      );
    // On failure, say whether the server died or its port was not reached.
    const seen =
      page.status === 200
        ? ''
        : `${await page.text()}\n${await inside('ps -o pid,pgid,stat,args; netstat -ltn')}`;
    expect(page.status, seen).toBe(200);
    expect(await inside('ps -o args | grep -c -e "^httpd -f -v" -e "^sh -c while"')).toBe('2\n');
  });
});
