#!/usr/bin/env node
// Files API benchmark (issue 10): throughput of PUT and GET /v1/leases/{id}/files (HTTP on
// loopback, through a busybox process in the sandbox) beside the floor: `cat` through `crun exec`
// of the same sandbox, through shell pipes (no HTTP, no node). Prints a Markdown section. Needs root, crun
// and `npm run build`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { prepareTokens, startPaidNode } from './lib/paid-node.mjs';

const SIZE_MIB = 256;
const ROUNDS = 5;
const MiB = 1024 * 1024;
const instance = `bf${randomBytes(4).toString('hex')}`;
const offer = {
  id: 'bench',
  vcpu: 1,
  memory_mib: 1536,
  pids: 64,
  disk_mib: 1024,
  price: { amount_per_hour: 60, unit: 'sat' },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mibPerS = (ms) => SIZE_MIB / (ms / 1000);

/** Runs a shell pipeline; resolves when it exited 0. */
function sh(script) {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${script}: exit ${code}`))));
  });
}
const BYTES = SIZE_MIB * MiB;

const t = await startPaidNode({ offers: [offer] }, { instance });
try {
  const [token] = await prepareTokens(t.mintUrl, 1, [8, 2]);
  const created = await fetch(`${t.url}/v1/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-cashu': token },
    body: JSON.stringify({ offer: 'bench', seconds: 600, image: 'busybox' }),
  });
  const lease = await created.json();
  if (created.status !== 201) throw new Error(`rent failed: ${JSON.stringify(lease)}`);
  const url = `${t.url}/v1/leases/${lease.id}/files?path=/root/bench.bin`;
  const auth = { authorization: `Bearer ${lease.token}` };

  // The raw floor: the runtime's exec of the same sandbox, its stdin or stdout a pipe.
  const meta = JSON.parse(readFileSync(join(t.dataDir, 'sandboxes', lease.id, 'meta.json'), 'utf8'));
  const crunExec = `crun --root ${t.stateDir} exec ${instance}-${meta.container} /run/alacarte/bin/busybox`;
  const curl = `curl -sS --fail -H 'authorization: Bearer ${lease.token}'`;

  const clean = async (path) => {
    const res = await fetch(`${t.url}/v1/leases/${lease.id}/exec`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ command: ['rm', '-f', path] }),
    });
    if (res.status !== 200) throw new Error(`rm: ${res.status}`);
  };
  const rows = { put: [], get: [], rawIn: [], rawOut: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const timed = async (row, script) => {
      const start = performance.now();
      await sh(script);
      rows[row].push(performance.now() - start);
    };
    await timed('put', `head -c ${BYTES} /dev/zero | ${curl} -T - '${url}' -o /dev/null`);
    await timed('get', `${curl} '${url}' -o /dev/null`);
    await clean('/root/bench.bin');
    await timed('rawIn', `head -c ${BYTES} /dev/zero | ${crunExec} sh -c 'cat > /root/raw.bin'`);
    await timed('rawOut', `${crunExec} cat /root/raw.bin | cat > /dev/null`);
    await clean('/root/raw.bin');
  }

  const line = (what, ms) => `| ${what} | ${mibPerS(median(ms)).toFixed(0)} | ${median(ms).toFixed(0)} |`;
  console.log(`## Files API (PUT/GET /v1/leases/{id}/files)

${SIZE_MIB} MiB each way (from /dev/zero, to /dev/null), ${ROUNDS} rounds (median), busybox image, offer ${offer.memory_mib} MiB memory and ${offer.disk_mib} MiB disk (the writable layer is a tmpfs). HTTP on loopback with curl (\`-T -\`, a chunked upload; \`-o /dev/null\`); the node, curl and the sandbox share the 2 cores. The floor is \`crun exec\` of \`cat\` in the same sandbox with its stdin or stdout a shell pipe, without HTTP or node. Load average at the end ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}.

| transfer | MiB/s | ms |
| --- | ---: | ---: |
${line('`PUT` (upload: request body → `cat >` temporary file → rename)', rows.put)}
${line('`crun exec sh -c "cat > file"` (floor)', rows.rawIn)}
${line('`GET` (download: `cat file` → answer)', rows.get)}
${line('`crun exec cat file` into a pipe (floor)', rows.rawOut)}

- upload at ${((mibPerS(median(rows.put)) / mibPerS(median(rows.rawIn))) * 100).toFixed(0)}% of the floor, download at ${((mibPerS(median(rows.get)) / mibPerS(median(rows.rawOut))) * 100).toFixed(0)}%`);
} finally {
  await t.close();
}
