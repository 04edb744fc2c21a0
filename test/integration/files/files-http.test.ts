import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { tarMembers, tarOf } from '../../helpers/tar.js';

// 16 MiB of disk (a tmpfs), 64 MiB of memory: the disk fills before the memory does.
const offer = {
  id: 'tiny',
  vcpu: 0.5,
  memory_mib: 64,
  pids: 64,
  disk_mib: 16,
  price: { amount_per_hour: 60, unit: 'sat' as const },
};

let t: LeaseTestNode;
let lease: { id: string; token: string };
const MiB = 1024 * 1024;

beforeAll(async () => {
  t = await startLeaseNode({ offers: [offer] });
  const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
  const { token } = await tokenOf(wallet, t.mintUrl, proofs, 20);
  const res = await postJson(
    `${t.url}/v1/leases`,
    { offer: 'tiny', seconds: 900, image: 'busybox' },
    { 'x-cashu': token },
  );
  expect(res.status).toBe(201);
  lease = res.body as { id: string; token: string };
}, 60_000);
afterAll(async () => {
  await t?.close();
});

const filesUrl = (path: string, extra = '') =>
  `${t.url}/v1/leases/${lease.id}/files?path=${encodeURIComponent(path)}${extra}`;
const auth = () => ({ authorization: `Bearer ${lease.token}` });

async function put(
  path: string,
  body: Buffer | string | ReadableStream,
  headers: Record<string, string> = {},
  extra = '',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(filesUrl(path, extra), {
    method: 'PUT',
    headers: { ...auth(), ...headers },
    body,
    duplex: 'half',
  } as RequestInit);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function get(path: string): Promise<{ status: number; type: string; body: Buffer }> {
  const res = await fetch(filesUrl(path), { headers: auth() });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: Buffer.from(await res.arrayBuffer()),
  };
}

async function sh(script: string): Promise<{ exit_code: number; stdout: string; stderr: string }> {
  const res = await postJson(
    `${t.url}/v1/leases/${lease.id}/exec`,
    { command: ['sh', '-c', script] },
    auth(),
  );
  expect(res.status).toBe(200);
  return res.body as { exit_code: number; stdout: string; stderr: string };
}

describe('files: PUT and GET /v1/leases/{id}/files', () => {
  it('writes a 1 MiB random file and reads it back byte for byte, owned by the sandbox root', async () => {
    const data = randomBytes(MiB);
    const up = await put('/root/deep/new/dir/data.bin', data, { 'content-type': 'application/octet-stream' });
    expect(up).toEqual({ status: 201, body: { path: '/root/deep/new/dir/data.bin', size: MiB } });
    const down = await get('/root/deep/new/dir/data.bin');
    expect(down.status).toBe(200);
    expect(down.type).toBe('application/octet-stream');
    expect(down.body.equals(data)).toBe(true);
    const inside = await sh(
      'stat -c "%u %g %a %s" /root/deep/new/dir/data.bin; sha256sum /root/deep/new/dir/data.bin',
    );
    const [stat, sum] = inside.stdout.trim().split('\n');
    expect(stat).toBe(`0 0 644 ${MiB}`);
    expect(sum?.split(' ')[0]).toBe(createHashHex(data));
  });

  it('keeps a JSON body as bytes, applies mode, keeps an existing mode when none is given', async () => {
    const json = '{"a": 1}';
    expect(
      (await put('/tmp/x.json', json, { 'content-type': 'application/json' }, '&mode=0750')).status,
    ).toBe(201);
    expect((await get('/tmp/x.json')).body.toString()).toBe(json);
    expect((await sh('stat -c %a /tmp/x.json')).stdout.trim()).toBe('750');
    expect((await put('/tmp/x.json', 'second')).status).toBe(201);
    expect((await sh('stat -c %a /tmp/x.json; cat /tmp/x.json')).stdout).toBe('750\nsecond');
    // A streamed body without a length (chunked) works too.
    const stream = Readable.toWeb(Readable.from([Buffer.from('chunk-1 '), Buffer.from('chunk-2')]));
    const up = await put('/tmp/chunked', stream as ReadableStream);
    expect(up).toEqual({ status: 201, body: { path: '/tmp/chunked', size: 15 } });
    expect((await get('/tmp/chunked')).body.toString()).toBe('chunk-1 chunk-2');
  });

  it('unpacks a tar into a directory and gives a directory back as a tar', async () => {
    const big = randomBytes(200_000);
    const archive = tarOf([
      { name: 'sub/', type: '5' },
      { name: 'sub/a.txt', content: 'alpha' },
      { name: 'big.bin', content: big },
      { name: 'run.sh', content: '#!/bin/sh\necho ran\n', mode: 0o755 },
      { name: 'link', type: '2', linkname: 'sub/a.txt' },
    ]);
    const up = await put('/srv/tree', archive, { 'content-type': 'application/x-tar' });
    expect(up.status).toBe(201);
    expect((await sh('cat /srv/tree/sub/a.txt; /srv/tree/run.sh; readlink /srv/tree/link')).stdout).toBe(
      'alpharan\nsub/a.txt\n',
    );
    const down = await get('/srv/tree');
    expect(down.status).toBe(200);
    expect(down.type).toBe('application/x-tar');
    const members = new Map(tarMembers(down.body).map((m) => [m.name.replace(/^\.\//, ''), m]));
    expect(members.get('sub/a.txt')?.content.toString()).toBe('alpha');
    expect(Buffer.compare(members.get('big.bin')?.content ?? Buffer.alloc(0), big)).toBe(0);
    expect(members.get('link')).toMatchObject({ type: '2', linkname: 'sub/a.txt' });
  });

  it('answers 404 for a missing path, 400 for bad paths and non-files', async () => {
    expect(await errorOf(get('/no/such/file'))).toEqual([404, 'not_found']);
    for (const bad of ['relative/path', '', `/${'a'.repeat(5000)}`, '/with\0nul']) {
      expect(await errorOf(get(bad))).toEqual([400, 'invalid_request']);
    }
    expect(await errorOf(get('/dev/zero'))).toEqual([400, 'invalid_request']);
    const noPath = await fetch(`${t.url}/v1/leases/${lease.id}/files`, { headers: auth() });
    expect(noPath.status).toBe(400);
    expect((await put('/tmp/', 'x')).status).toBe(400);
    expect((await put('/tmp', 'x')).body.error).toBe('invalid_request'); // a directory
    expect((await put('/tmp/m', 'x', {}, '&mode=999')).status).toBe(400);
    expect((await put('/tmp/garbage', 'not a tar', { 'content-type': 'application/x-tar' })).status).toBe(
      400,
    );
    const tarWithMode = await put('/tmp/t', tarOf([]), { 'content-type': 'application/x-tar' }, '&mode=0644');
    expect(tarWithMode.status).toBe(400);
    // A file that opens and then cannot be read: refused with the reason, in the API's shape (it
    // was a 500 in Fastify's own, the download's type already set).
    const unreadable = await get('/proc/self/mem');
    expect(unreadable.status).toBe(400);
    expect(unreadable.type).toMatch(/^application\/json/);
    expect(JSON.parse(unreadable.body.toString())).toMatchObject({
      error: 'invalid_request',
      message: expect.stringMatching(/^\/proc\/self\/mem: .*error/),
    });
    // HEAD would read the file in the sandbox for nothing: not served, and told apart from a
    // missing file (405, not 404).
    const head = await fetch(filesUrl('/etc/passwd'), { method: 'HEAD', headers: auth() });
    expect(head.status).toBe(405);
    expect(head.headers.get('allow')).toBe('PUT, GET');
  });

  it('answers 401 without or with a wrong credential', async () => {
    expect((await fetch(filesUrl('/etc/passwd'))).status).toBe(401);
    const wrong = { authorization: `Bearer ${lease.token.slice(0, -2)}xx` };
    expect((await fetch(filesUrl('/etc/passwd'), { headers: wrong })).status).toBe(401);
    const res = await fetch(filesUrl('/tmp/nope'), { method: 'PUT', headers: wrong, body: 'x' });
    expect(res.status).toBe(401);
    expect((await sh('ls /tmp/nope 2>&1 || true')).stdout).toMatch(/No such file/);
  });

  it("refuses more than the lease's disk with 413, leaves no partial file, and the sandbox still works", async () => {
    // Announced too large: refused before anything runs.
    expect(await errorOf(put('/tmp/huge', Buffer.alloc(17 * MiB)))).toEqual([413, 'payload_too_large']);
    // Streamed without a length past the disk: cut by the node at 16 MiB.
    const endless = Readable.toWeb(Readable.from(chunks(20, MiB)));
    expect(await errorOf(put('/tmp/endless', endless as ReadableStream))).toEqual([413, 'payload_too_large']);
    // Announced small enough but the disk is already partly full: ENOSPC inside the sandbox.
    expect((await put('/tmp/filler', randomBytes(10 * MiB))).status).toBe(201);
    expect(await errorOf(put('/tmp/overflow', randomBytes(8 * MiB)))).toEqual([413, 'payload_too_large']);
    // An old file of the same name is kept whole when its replacement does not fit.
    expect(await errorOf(put('/tmp/filler', randomBytes(12 * MiB)))).toEqual([413, 'payload_too_large']);
    await waitFor(async () => (await sh('ls -a /tmp')).stdout.includes('.alacarte-upload') === false);
    const after = await sh('ls -a /tmp; stat -c %s /tmp/filler; echo still-alive');
    expect(after.stdout).not.toMatch(/overflow|endless|huge|alacarte-upload/);
    expect(after.stdout).toContain(`${10 * MiB}\nstill-alive`);
    await sh('rm /tmp/filler');
    expect((await put('/tmp/after', 'fits again')).status).toBe(201);
    // Sparse files take no disk but are read (and sent) whole: a directory of two that add up to
    // more than the disk is refused 413 before anything is sent (it was a 200 cut off midway).
    await sh('mkdir /tmp/sparse && truncate -s 12M /tmp/sparse/a && truncate -s 12M /tmp/sparse/b');
    expect(await errorOf(get('/tmp/sparse'))).toEqual([413, 'payload_too_large']);
    await sh('rm -r /tmp/sparse');
  });

  it('never leaves the sandbox: .., absolute and /proc symlinks, hostile tar members', async () => {
    // Host-side files beside the sandboxes: none may be read, written or created from inside.
    const secret = join(t.dataDir, 'host-secret.txt');
    writeFileSync(secret, 'HOST-SECRET');
    const hostDir = join(t.dataDir, `escape-${randomBytes(4).toString('hex')}`);
    const before = readdirSync(t.dataDir).sort();

    await sh(
      `ln -s ${t.dataDir} /tmp/abs; ln -s /proc/1/root${t.dataDir} /tmp/proc1; ` +
        `ln -s /proc/self/root${t.dataDir} /tmp/procself; ln -s ../../../../../../../../.. /tmp/up`,
    );
    const tries = [
      `/../../../../..${secret}`,
      `${hostDir}/dotdot`,
      '/tmp/abs/host-secret.txt',
      '/tmp/proc1/host-secret.txt',
      '/tmp/procself/host-secret.txt',
      `/tmp/up${secret}`,
      `/proc/1/root${secret}`,
      `/proc/1/cwd/../../../..${secret}`,
    ];
    for (const path of tries) {
      const read = await get(path);
      expect(read.body.toString(), path).not.toContain('HOST-SECRET');
    }
    for (const path of [...tries, `/tmp/abs/${hostDir.split('/').at(-1)}/made`]) {
      const up = await put(path, 'tenant bytes');
      expect(up.status, `${path}: ${JSON.stringify(up.body)}`).toBeLessThan(500);
    }
    const evil = tarOf([
      { name: `../../../../../../..${hostDir}/dotdot-member`, content: 'x' },
      { name: `${hostDir}/absolute-member`, content: 'x' },
      { name: 'outlink', type: '2', linkname: hostDir },
      { name: 'outlink/through-link', content: 'x' },
      { name: 'hard', type: '1', linkname: secret },
      { name: 'hard2', type: '1', linkname: `../../../../../..${secret}` },
      { name: 'proc', type: '2', linkname: `/proc/1/root${t.dataDir}` },
      { name: 'proc/through-proc', content: 'x' },
    ]);
    const up = await put('/srv/evil', evil, { 'content-type': 'application/x-tar' });
    expect(up.status).toBeLessThan(500);
    // Two steps: one archive makes links out (busybox tar makes them last), the next writes through.
    const links = tarOf([
      { name: 'out', type: '2', linkname: hostDir },
      { name: 'viaproc', type: '2', linkname: `/proc/1/root${hostDir}` },
      { name: 'secretlink', type: '2', linkname: secret },
    ]);
    expect((await put('/srv/two', links, { 'content-type': 'application/x-tar' })).status).toBe(201);
    // Each on its own: a tar PUT is all or nothing, and /proc/1/root is out of the tenant's reach
    // (init is another uid, not dumpable), so the second may be refused whole.
    for (const member of ['out/second-step', 'viaproc/second-step-proc']) {
      const through = tarOf([{ name: member, content: 'x' }]);
      expect((await put('/srv/two', through, { 'content-type': 'application/x-tar' })).status).toBeLessThan(
        500,
      );
    }
    expect((await get('/srv/two/secretlink')).body.toString()).toBe('tenant bytes');
    const tarred = (await get('/srv/two')).body;
    expect(tarred.toString('latin1')).not.toContain('HOST-SECRET');
    expect((await sh(`ls ${hostDir}`)).stdout).toContain('second-step');
    // Read back through the links the tar made: only sandbox files come out.
    for (const path of [
      '/srv/evil/hard',
      '/srv/evil/hard2',
      '/srv/evil/outlink',
      '/srv/evil/proc',
      '/srv/evil',
    ]) {
      expect((await get(path)).body.toString(), path).not.toContain('HOST-SECRET');
    }

    expect(readFileSync(secret, 'utf8')).toBe('HOST-SECRET');
    expect(existsSync(hostDir)).toBe(false);
    expect(readdirSync(t.dataDir).sort()).toEqual(before);
    // ...while inside the sandbox these paths exist: the writes happened, in the sandbox.
    expect((await sh(`cat ${secret}; ls ${hostDir}`)).stdout).toContain('tenant bytes');
  });

  it('keeps no partial file when the client goes away mid-upload, and ends the reader of a dropped download', async () => {
    expect((await put('/tmp/kept', 'old content')).status).toBe(201);
    // Announces 4 MiB, sends 1 MiB, then the connection drops.
    const { hostname, port } = new URL(t.url);
    await new Promise<void>((resolve) => {
      const req = request({
        host: hostname,
        port,
        method: 'PUT',
        path: `/v1/leases/${lease.id}/files?path=/tmp/kept`,
        headers: { ...auth(), 'content-length': String(4 * MiB) },
      });
      req.on('error', () => resolve());
      req.write(randomBytes(MiB), () => setTimeout(() => req.destroy(), 300));
      req.on('close', () => resolve());
    });
    await waitFor(async () => !(await sh('ls -a /tmp')).stdout.includes('.alacarte-upload'));
    expect((await get('/tmp/kept')).body.toString()).toBe('old content');

    expect((await put('/tmp/big', randomBytes(8 * MiB))).status).toBe(201);
    const controller = new AbortController();
    const res = await fetch(filesUrl('/tmp/big'), { headers: auth(), signal: controller.signal });
    const reader = res.body?.getReader();
    await reader?.read();
    controller.abort();
    // The `cat` behind the download is killed, not left blocked on a pipe nobody reads.
    await waitFor(async () => !(await sh('ps -o args')).stdout.includes('cat /tmp/big'));
    await sh('rm /tmp/big');
  });

  it('an upload cut off at once replaces nothing, not even after a later upload was answered', async () => {
    const { hostname, port } = new URL(t.url);
    // A member whole, the archive's end blocks missing: busybox tar takes it for a whole archive.
    const cutTar = tarOf([{ name: 'f', content: 'cut' }]);
    for (const [path, cut, whole, read, headers] of [
      ['/tmp/cut', Buffer.from('abc'), 'hello', '/tmp/cut', {}],
      [
        '/tmp/cutdir',
        cutTar.subarray(0, cutTar.length - 1024),
        tarOf([{ name: 'f', content: 'whole' }]),
        '/tmp/cutdir/f',
        { 'content-type': 'application/x-tar' },
      ],
    ] as const) {
      // One chunk, then the connection drops at once: before the sandbox's process can be killed,
      // its runtime is; its stdin closes as if the body had ended.
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(port), hostname, () => {
          const type = 'content-type' in headers ? `content-type: ${headers['content-type']}\r\n` : '';
          socket.write(
            `PUT /v1/leases/${lease.id}/files?path=${path} HTTP/1.1\r\nhost: node\r\n` +
              `authorization: Bearer ${lease.token}\r\ntransfer-encoding: chunked\r\n${type}\r\n` +
              `${cut.length.toString(16)}\r\n`,
          );
          socket.write(cut);
          socket.end('\r\n', () => {
            socket.destroy();
            resolve();
          });
        });
        socket.on('error', reject);
      });
      expect((await put(path, whole, headers)).status).toBe(201);
      // What the cut upload staged is removed, never moved in: the later upload stays.
      await waitFor(
        async () =>
          !(await sh(`ls -a ${path.replace(/\/[^/]*$/, '')} ${path}`)).stdout.includes('.alacarte-'),
      );
      await new Promise((r) => setTimeout(r, 1500));
      expect((await get(read)).body.toString()).toBe(typeof whole === 'string' ? whole : 'whole');
    }
  });

  it('replaces a file whole, by PUT or by tar: a reader inside never sees it torn', async () => {
    const version = (i: number) => Buffer.alloc(MiB, 65 + (i % 26));
    expect((await put('/srv/torn/f', version(0))).status).toBe(201);
    // A reader in the sandbox checks the file's size as fast as it can, until told to stop (bounded).
    await sh(`(n=0; while [ ! -e /tmp/stop-reader ] && [ $n -lt 100000 ]; do
  s=$(wc -c < /srv/torn/f); [ "$s" = ${MiB} ] || echo "torn: $s"; n=$((n+1))
done; echo "reads $n") > /tmp/reader.out 2>&1 &`);
    for (let i = 1; i <= 24; i++) {
      const body = i % 2 ? version(i) : tarOf([{ name: 'f', content: version(i) }]);
      const headers: Record<string, string> = i % 2 ? {} : { 'content-type': 'application/x-tar' };
      expect((await put(i % 2 ? '/srv/torn/f' : '/srv/torn', body, headers)).status).toBe(201);
    }
    await sh('touch /tmp/stop-reader');
    await waitFor(async () => (await sh('cat /tmp/reader.out')).stdout.includes('reads'), 20_000);
    const seen = (await sh('cat /tmp/reader.out')).stdout;
    expect(seen).not.toMatch(/torn/);
    expect(Number(/reads (\d+)/.exec(seen)?.[1])).toBeGreaterThan(24);
    expect((await get('/srv/torn/f')).body.equals(version(24))).toBe(true);
    // Nothing of the staging directories is left.
    expect((await sh('ls -a /srv/torn')).stdout).toBe('.\n..\nf\n');
  });

  it('answers 429 rate_limited, not 400, while the sandbox runs as many processes as its offer allows', async () => {
    // The shell fills the sandbox's pids with sleeps until a fork fails, then exits (busybox's
    // shell ends at "can't fork"): one process left free, so the transfer's shell starts and its
    // own fork fails. The exec returns at the shell's exit; the sleeps stay.
    const fill = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['sh', '-c', 'while :; do sleep 120 & done'] },
      auth(),
    );
    expect(fill.status).toBe(200);
    expect((fill.body as { stderr: string }).stderr).toContain("can't fork");
    try {
      let answer: { status: number; body: Buffer } | undefined;
      for (let i = 0; i < 50 && answer?.status !== 429; i++) {
        answer = await get('/etc/passwd');
        if (answer.status !== 429) await new Promise((r) => setTimeout(r, 100));
      }
      expect(answer?.status).toBe(429);
      const body = JSON.parse(answer?.body.toString() ?? '{}') as { error: string; message: string };
      expect(body.error).toBe('rate_limited');
      expect(body.message).toContain('as many processes as its offer allows');
      expect(body.message).not.toMatch(/alacarte-(get|put)|line [0-9]+/);
      const upload = await put('/root/full.txt', 'x');
      expect(upload.status).toBe(429);
    } finally {
      // One process is free between transfers (not while one runs): busybox's killall ends the
      // sleeps, tried until it could start.
      for (let i = 0; i < 50; i++) {
        const killed = await postJson(
          `${t.url}/v1/leases/${lease.id}/exec`,
          { command: ['killall', 'sleep'] },
          auth(),
        );
        if ((killed.body as { exit_code?: number }).exit_code === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // The sandbox serves files again once its processes have ended.
    let after = 0;
    for (let i = 0; i < 50 && after !== 200; i++) {
      after = (await get('/etc/passwd')).status;
      if (after !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(after).toBe(200);
  });

  it('answers 409 once the lease has ended', async () => {
    const res = await fetch(`${t.url}/v1/leases/${lease.id}`, { method: 'DELETE', headers: auth() });
    expect(res.status).toBe(200);
    expect(await errorOf(get('/tmp/after'))).toEqual([409, 'lease_not_running']);
    expect(await errorOf(put('/tmp/after', 'x'))).toEqual([409, 'lease_not_running']);
  });
});

async function errorOf(
  answer: Promise<{ status: number; body: Record<string, unknown> | Buffer }>,
): Promise<[number, unknown]> {
  const { status, body } = await answer;
  const json = Buffer.isBuffer(body) ? (JSON.parse(body.toString()) as Record<string, unknown>) : body;
  return [status, json.error];
}

function* chunks(count: number, size: number): Generator<Buffer> {
  for (let i = 0; i < count; i++) yield randomBytes(size);
}

async function waitFor(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function createHashHex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
