import { mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

// Module hooks for a worker started from the TypeScript sources (the tests run them as they are):
// a `.js` import that does not exist next to a `.ts` file resolves to the `.ts` one, and `.ts`
// files are transpiled (types stripped, nothing checked) by the `typescript` package on load. The
// output is kept in a cache directory by the source's hash: loading the compiler costs a second of
// CPU, and the tests start many workers from the same few files.
const TS_HOOKS = `
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
let options;
let ts;
export async function initialize(data) {
  options = data;
}
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (specifier.endsWith('.js') && context.parentURL && context.parentURL.endsWith('.ts')) {
      return next(specifier.slice(0, -3) + '.ts', context);
    }
    throw err;
  }
}
export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const source = readFileSync(new URL(url), 'utf8');
  const cached = options.cache && join(options.cache, createHash('sha256').update(url).update(source).digest('hex') + '.js');
  if (cached) {
    try {
      return { format: 'module', source: readFileSync(cached, 'utf8'), shortCircuit: true };
    } catch {}
  }
  ts ??= (await import(options.typescript)).default;
  const out = ts.transpileModule(source, {
    fileName: url,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  }).outputText;
  if (!cached) return { format: 'module', source: out, shortCircuit: true };
  try {
    const temporary = cached + '.' + process.pid + '.' + Math.random().toString(36).slice(2);
    writeFileSync(temporary, out);
    renameSync(temporary, cached);
  } catch {}
  return { format: 'module', source: out, shortCircuit: true };
}
`;

const TS_BOOTSTRAP = `
const { register } = require('node:module');
const { workerData } = require('node:worker_threads');
register('data:text/javascript,' + encodeURIComponent(workerData.__hooks), {
  data: { typescript: workerData.__typescript, cache: workerData.__cache },
});
import(workerData.__entry).catch((err) => {
  process.nextTick(() => { throw err; });
});
`;

/**
 * Starts the worker thread whose entry is the module `entry` names, given as the built `.js` file's
 * URL (`new URL('./x.js', import.meta.url)`). Built, that file is started as it is; run from the
 * TypeScript sources (the tests), where only `x.ts` exists, the `.ts` is started through a
 * transpiling loader (the `typescript` package, a development dependency).
 * `workerData` must be an object; its keys starting with `__` are taken.
 */
export function startModuleWorker(
  entry: URL,
  options: WorkerOptions & { workerData: Record<string, unknown> },
): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(entry, options);
  const require = createRequire(import.meta.url);
  const source = new URL(entry.href.replace(/\.js$/, '.ts'));
  return new Worker(TS_BOOTSTRAP, {
    ...options,
    eval: true,
    workerData: {
      ...options.workerData,
      __entry: source.href,
      __hooks: TS_HOOKS,
      __typescript: pathToFileURL(require.resolve('typescript')).href,
      __cache: privateCacheDir(),
    },
  });
}

/**
 * A directory of this user's own for the transpiled sources (mode 0700, owned by this user, made if
 * missing), or undefined when that cannot be had: code read from a directory someone else can
 * write would run in the worker.
 */
function privateCacheDir(): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  const dir = join(tmpdir(), `alacarte-ts-workers-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o700, recursive: true });
    const stat = statSync(dir);
    return stat.isDirectory() && stat.uid === uid && (stat.mode & 0o077) === 0 ? dir : undefined;
  } catch {
    return undefined;
  }
}
