// What a renter does over HTTP (no native modules: usable from a worker thread). node:http with a
// keep-alive agent rather than fetch: the renters share the machine's 2 cores with the node, and
// fetch (undici) spent several times node:http's CPU per request, which the figures then blamed on
// the node (issue 13: the client's own cost).
import { Agent, request } from 'node:http';

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

/** One request; resolves with the status and the body parsed as JSON (undefined when empty). */
function call(url, method, headers, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      url,
      {
        method,
        agent,
        headers: payload
          ? { ...headers, 'content-type': 'application/json', 'content-length': payload.length }
          : headers,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode, body: text ? JSON.parse(text) : undefined });
          } catch (e) {
            reject(
              new Error(`${method} ${url} answered ${res.statusCode}, not JSON: ${text.slice(0, 200)}`, {
                cause: e,
              }),
            );
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** POSTs a lease with a prepared token; returns status, body and the milliseconds to the answer. */
export async function createLease(url, body, token) {
  const t0 = performance.now();
  const res = await call(`${url}/v1/leases`, 'POST', { 'x-cashu': token }, body);
  return { status: res.status, body: res.body, ms: performance.now() - t0, t0 };
}

export async function execIn(url, lease, command) {
  const res = await call(
    `${url}/v1/leases/${lease.id}/exec`,
    'POST',
    { authorization: `Bearer ${lease.token}` },
    { command },
  );
  if (res.status !== 200 || res.body?.exit_code !== 0)
    throw new Error(`exec answered ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res.body;
}

export async function stopLease(url, lease) {
  const res = await call(`${url}/v1/leases/${lease.id}`, 'DELETE', {
    authorization: `Bearer ${lease.token}`,
  });
  if (res.status !== 200) throw new Error(`stop of ${lease.id} answered ${res.status}`);
}

/** Runs `work(item)` over items with at most `concurrency` at a time. */
export async function pool(items, concurrency, work) {
  const results = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i], i);
    }
  });
  await Promise.all(runners);
  return results;
}

/** Closes the kept-alive connections (a worker's event loop then ends). */
export function closeConnections() {
  agent.destroy();
}
