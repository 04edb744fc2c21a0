// What a renter does over HTTP (no native modules: usable from a worker thread).

/** POSTs a lease with a prepared token; returns status, body and the milliseconds to the answer. */
export async function createLease(url, body, token) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-cashu': token },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  return { status: res.status, body: json, ms: performance.now() - t0, t0 };
}

export async function execIn(url, lease, command) {
  const res = await fetch(`${url}/v1/leases/${lease.id}/exec`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${lease.token}` },
    body: JSON.stringify({ command }),
  });
  const json = await res.json();
  if (res.status !== 200 || json.exit_code !== 0)
    throw new Error(`exec answered ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
  return json;
}

export async function stopLease(url, lease) {
  const res = await fetch(`${url}/v1/leases/${lease.id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${lease.token}` },
  });
  await res.arrayBuffer();
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
