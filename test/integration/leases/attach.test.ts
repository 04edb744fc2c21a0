import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { socketKeyboard, typeUntil } from '../../helpers/terminal.js';

let t: LeaseTestNode;
let lease: { id: string; token: string };

beforeAll(async () => {
  t = await startLeaseNode();
  const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
  const { token } = await tokenOf(wallet, t.mintUrl, proofs, 10);
  const res = await postJson(
    `${t.url}/v1/leases`,
    { offer: 'small', seconds: 600, image: 'busybox' },
    { 'x-cashu': token },
  );
  expect(res.status).toBe(201);
  lease = res.body as { id: string; token: string };
});
afterAll(async () => {
  await t?.close();
});

/** Collects what the terminal shows until `pattern` appears. */
function waitFor(output: { text: string }, socket: WebSocket, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${pattern}; saw: ${output.text}`)),
      15_000,
    );
    const check = () => {
      if (pattern.test(output.text)) {
        clearTimeout(timer);
        socket.off('message', check);
        resolve(output.text);
      }
    };
    socket.on('message', check);
    check();
  });
}

function open(protocols: string[], headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/leases/${lease.id}/attach`, protocols, {
    headers,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe('attach: an interactive shell over a WebSocket', () => {
  it('runs commands on a real terminal, resizes, and ends when the shell exits', async () => {
    const ws = await open([`bearer.${lease.token}`]);
    expect(ws.protocol).toBe(`bearer.${lease.token}`);
    const output = { text: '' };
    ws.on('message', (data: Buffer) => {
      output.text += data.toString('utf8');
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

    // Typed until answered throughout: keys that come before the shell's line editing may be dropped.
    await typeUntil(socketKeyboard(ws), 'echo "sum=$((40+2))"; tty', () => output.text, /sum=42/);
    await waitFor(output, ws, /\/dev\/pts\/\d+/);

    ws.send(JSON.stringify({ type: 'resize', cols: 123, rows: 45 }));
    ws.send(Buffer.from('stty size\n'), { binary: true });
    await waitFor(output, ws, /45 123/);

    ws.send(Buffer.from('exit\n'), { binary: true });
    expect(await closed).toBe(1000);
  });

  // The sandbox's init runs with no_new_privs; a terminal comes from the runtime's exec, which
  // leaves it out unless asked (--no-new-privs in attach.ts).
  it('runs the shell with no_new_privs, as the sandbox init has it', async () => {
    const ws = await open([], { authorization: `Bearer ${lease.token}` });
    const output = { text: '' };
    ws.on('message', (data: Buffer) => {
      output.text += data.toString('utf8');
    });
    // The typed line is echoed too: only the command's output has a digit between the brackets.
    const line = 'echo "nnp=[$(awk \'/^NoNewPrivs:/ {print $2}\' /proc/self/status)]"';
    await typeUntil(socketKeyboard(ws), line, () => output.text, /nnp=\[\d\]/);
    expect(/nnp=\[(\d)\]/.exec(output.text)?.[1]).toBe('1');
    ws.close();
  });

  it('takes the credential from the Authorization header too', async () => {
    const ws = await open([], { authorization: `Bearer ${lease.token}` });
    const output = { text: '' };
    ws.on('message', (data: Buffer) => {
      output.text += data.toString('utf8');
    });
    await typeUntil(socketKeyboard(ws), 'echo attached-$((6*7))', () => output.text, /attached-42/);
    ws.close();
  });

  it('refuses a wrong or missing credential before the upgrade', async () => {
    await expect(open([`bearer.${lease.token}x`])).rejects.toThrow('HTTP 401');
    await expect(open([])).rejects.toThrow('HTTP 401');
  });
});

describe('attach: what a client sends is bounded and only binary frames are typed', () => {
  it('drops a text frame that is not a resize instead of typing it, before and after the shell starts', async () => {
    const ws = await open([], { authorization: `Bearer ${lease.token}` });
    const output = { text: '' };
    ws.on('message', (data: Buffer) => {
      output.text += data.toString('utf8');
    });
    // Sent at once, so it arrives while the shell still starts; then again once it runs.
    ws.send('echo PW""NED-$((40+2))\n');
    await typeUntil(socketKeyboard(ws), 'echo first-$((1+2))', () => output.text, /first-3/);
    ws.send('echo PW""NED-$((40+2))\n');
    ws.send('{"type":"resize","cols":100,"rows":30,"x":"; echo PW""NED-$((40+2))"}\n');
    ws.send(Buffer.from('echo second-$((2+2))\n'), { binary: true });
    await waitFor(output, ws, /second-4/);
    expect(output.text).not.toContain('PWNED-42');
    ws.close();
  });

  it('applies a storm of resizes one at a time, in order with the keys typed after them', async () => {
    const ws = await open([], { authorization: `Bearer ${lease.token}` });
    const output = { text: '' };
    ws.on('message', (data: Buffer) => {
      output.text += data.toString('utf8');
    });
    await typeUntil(socketKeyboard(ws), 'echo ready-$((1+1))', () => output.text, /ready-2/);
    const baseline = childCount();
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, childCount() - baseline);
    }, 5);
    for (let i = 0; i < 200; i++)
      ws.send(JSON.stringify({ type: 'resize', cols: 50 + (i % 50), rows: 20 + (i % 10) }));
    ws.send(JSON.stringify({ type: 'resize', cols: 131, rows: 41 }));
    ws.send(Buffer.from('stty size\n'), { binary: true });
    await waitFor(output, ws, /41 131/);
    clearInterval(sampler);
    // Each resize may cost the host a process: never more than one at a time per terminal.
    expect(peak).toBeLessThanOrEqual(1);
    ws.close();
  });

  it('closes with 1009 when a client sends more than the cap before the shell runs', async () => {
    const ws = await open([], { authorization: `Bearer ${lease.token}` });
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    // 240 KiB at once, past the 128 KiB early-input cap: it arrives within a few reads, long
    // before a shell can start (that takes processes: script, the runtime, stty).
    const frame = Buffer.alloc(60 * 1024, 0x61);
    for (let i = 0; i < 4; i++) ws.send(frame, { binary: true });
    expect(await closed).toEqual({ code: 1009, reason: 'too much input before the shell started' });
  });

  it('gives back the terminal of a client that leaves while its shell starts', async () => {
    for (let i = 0; i < 6; i++) {
      const ws = await open([], { authorization: `Bearer ${lease.token}` });
      ws.close();
      await new Promise((resolve) => ws.once('close', resolve));
    }
    // Each of the six took one of the lease's four terminal slots while its shell started; once
    // those shells run they must end, as nobody is there. Until then a new terminal may be refused.
    const until = Date.now() + 20_000;
    for (;;) {
      const ws = await open([], { authorization: `Bearer ${lease.token}` });
      const out = { text: '' };
      ws.on('message', (data: Buffer) => {
        out.text += data.toString('utf8');
      });
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      const gone = new AbortController();
      void closed.then(() => gone.abort());
      const ran = typeUntil(socketKeyboard(ws), 'echo still-$((3+4))', () => out.text, /still-7/, {
        signal: gone.signal,
      }).then(
        () => 'ran' as const,
        (err: unknown) => (gone.signal.aborted ? closed : Promise.reject(err)),
      );
      const outcome = await Promise.race([ran, closed]);
      if (outcome === 'ran') {
        ws.close();
        return;
      }
      expect(outcome).toBe(1013); // rate_limited: the slots are still taken
      expect(Date.now(), 'the terminals of clients that left were never given back').toBeLessThan(until);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
});

describe('bounds per lease', () => {
  it('runs at most 8 commands at once per lease; the rest get 429 rate_limited and nothing runs for them', async () => {
    const auth = { authorization: `Bearer ${lease.token}` };
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        postJson(
          `${t.url}/v1/leases/${lease.id}/exec`,
          { command: ['sh', '-c', `touch /tmp/ran-${i}; sleep 1`] },
          auth,
        ),
      ),
    );
    const ok = answers.filter((a) => a.status === 200);
    const limited = answers.filter((a) => a.status === 429);
    expect(ok.length).toBe(8);
    expect(limited.length).toBe(4);
    for (const a of limited) {
      expect(a.body.error).toBe('rate_limited');
      expect(a.headers.get('retry-after')).toBe('1');
    }
    // The slots come back once the commands end.
    const after = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['sh', '-c', 'ls /tmp | grep -c ^ran-'] },
      auth,
    );
    expect(after.status).toBe(200);
    expect(after.body.stdout).toBe('8\n');
  });
});

/** Processes this test process has started and that still run. */
function childCount(): number {
  let n = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}
