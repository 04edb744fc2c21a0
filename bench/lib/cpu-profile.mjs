// Reading a V8 CPU profile (the `Profiler.stop` result of node:inspector) for the bench scripts.

/**
 * Self time per function with its caller chain (the function and up to 3 callers, joined by ' < '),
 * summed over the profile's samples, largest first.
 * @param {{nodes: object[], samples: number[], timeDeltas: number[]}} profile a V8 CPU profile
 * @param {number} n how many rows at most
 * @returns {Array<[string, number]>} [chain, self time in µs] rows
 */
export function topSelfTime(profile, n) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const self = new Map();
  for (const [i, id] of profile.samples.entries())
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const name = (f) =>
    `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  const rows = new Map();
  for (const [id, us] of self) {
    const chain = [];
    for (let p = id, d = 0; p !== undefined && d < 4; p = parent.get(p), d++)
      chain.push(name(byId.get(p).callFrame));
    const key = chain.join(' < ');
    rows.set(key, (rows.get(key) ?? 0) + us);
  }
  return [...rows].sort((a, b) => b[1] - a[1]).slice(0, n);
}
