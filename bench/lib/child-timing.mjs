// Times every child process this program starts (the node's own included: crun, mounts): how long
// spawn() holds the calling thread (fork + exec, synchronous in libuv) and how long until the child
// exits. Imported first, before the built code binds `spawn`, so that its calls are seen too.
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const childProcess = require('node:child_process');
const original = childProcess.spawn;
const VERBS = new Set(['run', 'exec', 'delete', 'list', 'spec', 'sh', 'umount']);

/** key ("crun run --detach", "busybox sh", ...) -> { spawn: ms[], exit: ms[] } */
export const childTimes = new Map();

childProcess.spawn = function timedSpawn(file, args, options) {
  const t0 = performance.now();
  const child = original.call(this, file, args, options);
  const spawnMs = performance.now() - t0;
  const list = Array.isArray(args) ? args : [];
  const verb = list.find((a) => VERBS.has(a)) ?? '';
  const key = `${String(file).split('/').pop()} ${verb}${list.includes('--detach') ? ' --detach' : ''}`;
  child.once('exit', () => {
    if (!childTimes.has(key)) childTimes.set(key, { spawn: [], exit: [] });
    const entry = childTimes.get(key);
    entry.spawn.push(spawnMs);
    entry.exit.push(performance.now() - t0);
  });
  return child;
};
syncBuiltinESMExports();

/** Forgets what was timed so far. */
export function resetChildTimes() {
  childTimes.clear();
}
