import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CLI, type ServedNode, serveNode } from '../../helpers/cli.js';
import { postJson, tokens } from '../../helpers/lease-node.js';
import { socketKeyboard, typeUntil, waitForShell } from '../../helpers/terminal.js';

/**
 * Issue 9, section 3: a client drives the terminal's buffers in both directions, and neither may
 * grow the node. The node runs as a process of its own (the built `alacarte serve`), so its
 * resident memory can be read from /proc while a client floods it.
 */
const MiB = 1024 * 1024;
/** What the node may take off the socket and keep (terminal input it accepted but has not delivered). */
const ALLOWED_GROWTH = 50 * MiB;
/**
 * How far the resident memory of the node and its relays may rise. More than ALLOWED_GROWTH: the
 * frames the node received and already passed on are garbage that V8 collects only after tens of
 * MiB of them (external memory triggers a collection at ~64 MiB), and how far that goes depends on
 * the host's load (CI saw 53 MiB, a quiet host 23-44). A node that buffers the flood grows by
 * hundreds of MiB within two seconds (measured with the input back-pressure removed: +341 MiB).
 */
const ALLOWED_RSS_GROWTH = 96 * MiB;

let server: ServedNode;
let lease: { id: string; token: string };

beforeAll(async () => {
  expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
  server = await serveNode();
  const { tokens: pool } = await tokens(server.mintUrl, 1, 16);
  const res = await postJson(
    `${server.url}/v1/leases`,
    { offer: 'small', seconds: 900, image: 'busybox' },
    { 'x-cashu': pool[0]?.token ?? '' },
  );
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  lease = res.body as { id: string; token: string };
});
afterAll(async () => {
  if (lease) {
    await postJson(
      `${server.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    ).catch(() => undefined);
  }
  await server?.stop();
});

/** A process's resident set size in bytes, from the kernel (0 once it is gone). */
function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** The node and every process it started, directly or not. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const todo = [root];
  for (let pid = todo.pop(); pid !== undefined; pid = todo.pop()) {
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * The node's resident memory plus that of every process it started (the terminal's relays and
 * whatever runs under them): a buffer moved out of the node into a helper process still counts.
 */
function treeRss(root: number): number {
  return descendants(root).reduce((sum, pid) => sum + rssOf(pid), 0);
}

async function attach(): Promise<{ ws: WebSocket; output: { text: string } }> {
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/leases/${lease.id}/attach`, {
    headers: { authorization: `Bearer ${lease.token}` },
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const output = { text: '' };
  ws.on('message', (data: Buffer) => {
    // Keep only the tail: the test must not hold the flood itself.
    output.text = (output.text + data.toString('latin1')).slice(-4096);
  });
  return { ws, output };
}

async function waitFor(output: { text: string }, pattern: RegExp, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!pattern.test(output.text)) {
    if (Date.now() > until)
      throw new Error(`timed out waiting for ${pattern}; saw: ${output.text.slice(-300)}`);
    await sleep(20);
  }
}

describe('a client that floods a terminal cannot grow the node', () => {
  it('attach, run `yes`, stop reading for 60 s: the node grows by less than 96 MiB', async () => {
    const pid = server.process.pid ?? 0;
    const { ws, output } = await attach();
    // Typed until answered: keys that come before the shell's line editing may be dropped.
    await typeUntil(socketKeyboard(ws), 'echo ready-$((6*7))', () => output.text, /ready-42/);
    const before = treeRss(pid);

    ws.send(Buffer.from('yes\n'), { binary: true });
    await waitFor(output, /y\r*\ny\r*\ny/);
    // Stop reading: the client's socket no longer takes data off the wire, so TCP fills up.
    ws.pause();
    let peak = before;
    for (let s = 0; s < 60; s++) {
      await sleep(1000);
      peak = Math.max(peak, treeRss(pid));
    }
    expect(peak - before, `RSS grew from ${before} to ${peak}`).toBeLessThan(ALLOWED_RSS_GROWTH);

    // The terminal still works once the client reads again.
    ws.resume();
    ws.send(Buffer.from('\x03'), { binary: true });
    await sleep(500);
    // The shell sets up its line editing again after Ctrl-C, so this too is typed until answered.
    await typeUntil(socketKeyboard(ws), 'echo after-$((40+2))', () => output.text, /after-42/);
    ws.close();
  }, 180_000);

  it('a client typing into a shell that does not read is stopped or cut off, not buffered', async () => {
    const pid = server.process.pid ?? 0;
    const { ws, output } = await attach();
    await waitForShell(socketKeyboard(ws), () => output.text);
    // Raw mode, so the terminal holds input for the shell rather than discarding a line past 4 KiB.
    ws.send(Buffer.from('stty raw -echo; echo sleeping-$((6*7)); sleep 3600\n'), { binary: true });
    await waitFor(output, /sleeping-42/);
    const before = treeRss(pid);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

    // Send as fast as the node takes it, for 20 s or 512 MiB: every byte the node or its relays
    // took and kept would show in their memory.
    const frame = Buffer.alloc(60 * 1024, 'x');
    let sent = 0;
    let frames = 0;
    let peak = before;
    const until = Date.now() + 20_000;
    while (Date.now() < until && sent < 512 * MiB && ws.readyState === WebSocket.OPEN) {
      if (ws.bufferedAmount < 4 * MiB) {
        ws.send(frame, { binary: true });
        sent += frame.length;
        if (++frames % 32 === 0) await sleep(0);
      } else {
        await sleep(50);
        peak = Math.max(peak, treeRss(pid));
      }
    }
    await sleep(2000);
    peak = Math.max(peak, treeRss(pid));
    expect(peak - before, `RSS grew from ${before} to ${peak}`).toBeLessThan(ALLOWED_RSS_GROWTH);
    // Either the node stopped taking input (it waits in this client) or it ended the terminal.
    const held = sent - ws.bufferedAmount < ALLOWED_GROWTH;
    const ended = ws.readyState !== WebSocket.OPEN && (await closed) === 1000;
    expect(held || ended, `the node took ${sent - ws.bufferedAmount} bytes and kept the terminal open`).toBe(
      true,
    );
    ws.terminate();
    // Nothing of that terminal stays behind, even though `sleep` in the sandbox still holds it.
    const settle = Date.now() + 15_000;
    while (leftoverExecs().length > 0 && Date.now() < settle) await sleep(200);
    expect(leftoverExecs()).toEqual([]);
  }, 120_000);

  it('a client that leaves in the middle of a flood leaves no relay process behind', async () => {
    const pid = server.process.pid ?? 0;
    const { ws, output } = await attach();
    await waitForShell(socketKeyboard(ws), () => output.text);
    ws.send(Buffer.from('yes\n'), { binary: true });
    await waitFor(output, /y\r*\ny\r*\ny/);
    ws.pause();
    await sleep(3000);
    ws.terminate();
    // The shell, its terminal relay and the runtime's exec process all go.
    const relays = () => descendants(pid).filter((p) => /\bscript\b|\bexec\b -t/.test(commandOf(p)));
    const until = Date.now() + 15_000;
    // A runtime exec whose relay has gone may be reparented and take a moment more to end.
    while ((relays().length > 0 || leftoverExecs().length > 0) && Date.now() < until) await sleep(200);
    expect(relays().map(commandOf)).toEqual([]);
    expect(leftoverExecs()).toEqual([]);
  }, 60_000);
});

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** Runtime exec processes (terminal relays) of this node's sandboxes, wherever they hang. */
function leftoverExecs(): string[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .map(commandOf)
    .filter((c) => c.includes(' exec -t ') && c.includes(server.dataDir));
}
