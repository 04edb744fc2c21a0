import { readFileSync } from 'node:fs';

/** Mount points at or under `dir` in this mount namespace, deepest first (the order to unmount in). */
export function mountsUnder(dir: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const found: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(Number.parseInt(o, 8)),
    );
    if (point === dir || point.startsWith(prefix)) found.push(point);
  }
  return found.sort((a, b) => b.length - a.length);
}
