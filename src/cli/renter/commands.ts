import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { Amount } from '../../core/amount.js';
import { DEFAULT_IMAGE } from '../../core/lease-request.js';
import { parseSshPublicKey } from '../../core/ssh-keys.js';
import { Alacarte, type CollectedRefund } from '../../sdk/client.js';
import { formatDuration, parseDuration } from '../../sdk/duration.js';
import { AlacarteApiError } from '../../sdk/errors.js';
import { LeaseBook } from '../../sdk/lease-book.js';
import type { StoppedLease } from '../../sdk/types.js';
import { defaultHome, LocalWallet } from '../../wallet/local-wallet.js';
import { copy } from './copy.js';
import { HELP } from './help.js';
import { addLease, leases } from './lease-commands.js';
import { runShell } from './shell.js';
import { formatWhen, type Io, Progress, table, UsageError } from './ui.js';
import { walletCommand } from './wallet-commands.js';

export const DEFAULT_URL = 'http://127.0.0.1:8402';

type Options = NonNullable<ParseArgsConfig['options']>;
const COMMON: Options = {
  url: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** What every renter command works with; the wallet is opened (and locked) only when needed. */
export class Context {
  readonly home: string;
  readonly url: string;
  /** --url was given: the node for every call, known leases' too (AlacarteOptions.pinUrl). */
  private readonly pinUrl: boolean;
  readonly json: boolean;
  readonly progress: Progress;
  /** The SDK's last progress step of this command (`quote`, `pay`, `send`, `change`). */
  step: string | undefined;
  private openedWallet: LocalWallet | undefined;

  constructor(
    readonly io: Io,
    values: { url?: string; json?: boolean },
  ) {
    // Named on the command line: it is the node for every call, known leases' too.
    this.pinUrl = values.url !== undefined;
    this.home = defaultHome(io.env);
    this.url = (values.url ?? io.env.ALACARTE_URL ?? DEFAULT_URL).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+/.test(this.url)) throw new UsageError(`not an http(s) URL: ${this.url}`, 'help');
    this.json = values.json === true;
    this.progress = new Progress(io.stderr, this.json);
  }

  /**
   * The local wallet, created (with a new seed phrase) on first use, which is announced unless
   * `announceNew` is false (a restore replaces that new wallet at once: its seed is not the user's).
   */
  wallet(options: { announceNew?: boolean } = {}): LocalWallet {
    if (!this.openedWallet) {
      // Commands of one user often run back to back (scripts): wait briefly for the other to finish.
      this.openedWallet = LocalWallet.open({ home: this.home, lockWaitMs: 30_000 });
      if (this.openedWallet.isNew && !this.json && options.announceNew !== false) {
        this.io.stderr.write(
          `alacarte: created a new wallet in ${this.home} — back up its seed phrase: alacarte wallet seed\n`,
        );
      }
    }
    return this.openedWallet;
  }

  sdk(options: { wallet: boolean }): Alacarte {
    return new Alacarte({
      url: this.url,
      pinUrl: this.pinUrl,
      wallet: options.wallet ? this.wallet() : undefined,
      leases: new LeaseBook(this.home),
      onProgress: (step) => {
        this.step = step;
        this.progress.start(PROGRESS_TEXT[step] ?? step);
      },
    });
  }

  /**
   * Settles what an interrupted command left, and collects the refunds of leases the node ended
   * before their time (best effort: an unreachable node just leaves it for later).
   */
  async recover(): Promise<void> {
    const sdk = this.sdk({ wallet: true });
    if (this.wallet().pendingOps().length) {
      this.progress.start('settling an interrupted payment');
      try {
        await sdk.recover();
      } catch {
        // left pending; the next command tries again
      } finally {
        this.progress.stop();
      }
    }
    await this.collectRefunds(sdk);
  }

  /**
   * Refunds of leases stopped elsewhere (the node, when their sandbox died; or another holder of the
   * credential: the node does not say which), into the wallet, each said on stderr.
   */
  private async collectRefunds(sdk: Alacarte): Promise<void> {
    if (!sdk.leases().some((l) => l.state === 'running')) return;
    this.progress.start('asking the node about your leases');
    let collected: Awaited<ReturnType<Alacarte['collectRefunds']>> = [];
    try {
      collected = await sdk.collectRefunds();
    } catch {
      // the wallet could not take a refund now: its pending record is redeemed next time
    } finally {
      this.progress.stop();
    }
    for (const c of collected) {
      const why = `alacarte: lease ${c.id} was stopped before its time, not by this program (by a request with its credential, e.g. a curl; or by the node, when its sandbox ended: out of memory, say)`;
      this.io.stderr.write(`${why}; ${refundFate(c)}\n`);
    }
  }

  out(human: string, json: unknown): void {
    this.io.stdout.write(this.json ? `${JSON.stringify(json, null, 2)}\n` : `${human}\n`);
  }

  /** Forgets the open wallet (after its file was replaced); the next `wallet()` opens it again. */
  resetWallet(): void {
    this.openedWallet = undefined;
  }

  close(): void {
    this.progress.stop();
    this.openedWallet?.close();
  }
}

const PROGRESS_TEXT: Record<string, string> = {
  quote: 'asking the node for the price',
  pay: 'preparing the ecash',
  send: 'paying and starting the sandbox',
  change: 'taking the change back',
};

export const RENTER_COMMANDS = new Set([
  'offers',
  'quote',
  'rent',
  'leases',
  'exec',
  'cp',
  'shell',
  'extend',
  'stop',
  'wallet',
]);

/** Runs a renter command; resolves with the exit code. */
export async function runCommand(command: string, args: string[], io: Io): Promise<number> {
  switch (command) {
    case 'offers':
      return withContext(command, args, {}, io, offers);
    case 'quote':
      return withContext(command, args, { offer: { type: 'string' }, for: { type: 'string' } }, io, quote);
    case 'rent':
      return withContext(
        command,
        args,
        {
          offer: { type: 'string' },
          for: { type: 'string' },
          image: { type: 'string' },
          port: { type: 'string', multiple: true },
          env: { type: 'string', multiple: true },
          'ssh-key': { type: 'string', multiple: true },
          max: { type: 'string' },
        },
        io,
        rent,
      );
    case 'leases':
      if (args[0] === 'add')
        return withContext(
          'leases add',
          args.slice(1),
          { 'credential-file': { type: 'string' } },
          io,
          addLease,
        );
      return withContext(command, args, { prune: { type: 'boolean' } }, io, leases);
    case 'exec':
      return withContext(
        command,
        args,
        {
          timeout: { type: 'string' },
          stdin: { type: 'boolean' },
          'no-stdin': { type: 'boolean' },
          background: { type: 'boolean' },
        },
        io,
        exec,
      );
    case 'cp':
      return withContext(command, args, {}, io, cp);
    case 'shell':
      return withContext(command, args, {}, io, async (ctx, _values, positionals) =>
        runShell(ctx.sdk({ wallet: false }), leaseId(positionals, 'shell'), ctx.io),
      );
    case 'extend':
      return withContext(command, args, { for: { type: 'string' }, max: { type: 'string' } }, io, extend);
    case 'stop':
      return withContext(command, args, {}, io, stop);
    case 'wallet': {
      const [sub, ...rest] = args;
      if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
        io.stdout.write(`${HELP.wallet}\n`);
        return sub === undefined ? 2 : 0;
      }
      const spec = walletCommand(sub);
      if (!spec) throw new UsageError(`unknown wallet command '${sub}'`, 'wallet');
      return withContext(`wallet ${sub}`, rest, spec.options, io, spec.run);
    }
    default:
      throw new UsageError(`unknown command '${command}'`, 'help');
  }
}

export type Values = Record<string, string | boolean | Array<string | boolean> | undefined>;
/**
 * A renter command: its options, its arguments (after `--` too, except for rent and exec), and for
 * rent and exec the sandbox's command line (what follows `--`; empty for the others).
 */
export type Handler = (
  ctx: Context,
  values: Values,
  positionals: string[],
  rest: string[],
) => Promise<number>;

/** The commands whose arguments after `--` are the sandbox's command line. */
const TAKE_A_COMMAND_LINE = new Set(['rent', 'exec']);

async function withContext(
  command: string,
  argv: string[],
  options: Options,
  io: Io,
  run: Handler,
): Promise<number> {
  // `--` ends our options. After it: the sandbox's command line for rent and exec; for the other
  // commands more arguments, checked as the ones before it (they were silently dropped: `leases add
  // ID -- TOKEN`, the way to give a credential starting with '-', read none and asked for one).
  const dash = argv.indexOf('--');
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const after = dash >= 0 ? argv.slice(dash + 1) : [];
  const commandLine = TAKE_A_COMMAND_LINE.has(command);
  const { values, positionals } = parseArgs({
    args: own,
    options: { ...COMMON, ...options },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(`${HELP[command] ?? HELP.renter}\n`);
    return 0;
  }
  const ctx = new Context(io, {
    url: values.url as string | undefined,
    json: values.json as boolean | undefined,
  });
  try {
    return await run(
      ctx,
      values,
      commandLine ? positionals : [...positionals, ...after],
      commandLine ? after : [],
    );
  } finally {
    ctx.close();
  }
}

function leaseId(positionals: string[], command: string): string {
  const [id, extra] = positionals;
  if (!id) throw new UsageError('which lease? give its id (see: alacarte leases)', command);
  if (extra !== undefined)
    throw new UsageError(`unexpected argument '${extra}' (put the command after --)`, command);
  return id;
}

function duration(value: unknown, command: string): number {
  if (typeof value !== 'string') throw new UsageError('how long? give --for, e.g. --for 2h', command);
  const seconds = parseDuration(value);
  if (seconds === undefined)
    throw new UsageError(`not a duration: '${value}' (try 600s, 90m, 2h, 1d, 1h30m)`, command);
  return seconds;
}

function noPositionals(positionals: string[], command: string): void {
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`, command);
}

// ---- commands ----

const cp: Handler = async (ctx, _values, positionals) => {
  const [from, to, extra] = positionals;
  if (from === undefined || to === undefined)
    throw new UsageError('copy what where? alacarte cp LOCAL ID:/path, or ID:/path LOCAL', 'cp');
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`, 'cp');
  const copied = await copy(ctx.sdk({ wallet: false }), ctx.io, from, to);
  if (copied.human !== undefined) ctx.out(copied.human, copied.json);
  return 0;
};

const offers: Handler = async (ctx, _values, positionals) => {
  noPositionals(positionals, 'offers');
  const res = await ctx.sdk({ wallet: false }).offers();
  const rows = [['OFFER', 'VCPU', 'MEMORY', 'DISK', 'NETWORK', 'PRICE', 'AVAILABLE']];
  for (const o of res.offers) {
    rows.push([
      o.id,
      String(o.vcpu),
      `${o.memory_mib} MiB`,
      `${o.disk_mib} MiB`,
      o.network === 'egress' ? `egress ${o.bandwidth_mbit ?? '?'} Mbit/s` : 'none',
      `${o.price.amount_per_hour} ${o.price.unit}/h`,
      String(o.available),
    ]);
  }
  const human = [
    table(rows),
    '',
    ...(res.image_details?.length
      ? [
          'images:',
          ...res.image_details.map(
            (i) => `  ${i.name} (${i.size_mib} MiB)${i.description ? `: ${i.description}` : ''}`,
          ),
        ]
      : [`images: ${res.images.join(', ')}`]),
    `pays with Cashu ecash (${res.payment.cashu.unit}) of: ${res.payment.cashu.mints.join(', ')}`,
    ...(res.payment.l402
      ? [`and with Lightning (L402, ${res.payment.l402.unit}): see the 402 of a request`]
      : []),
    ...(res.payment.x402
      ? [
          `and with x402 (${res.payment.x402.asset} on ${res.payment.x402.network}, to ${res.payment.x402.pay_to}): see the 402 of a request`,
        ]
      : []),
  ].join('\n');
  ctx.out(human, res);
  return 0;
};

const quote: Handler = async (ctx, values, positionals) => {
  const offer = (values.offer as string | undefined) ?? positionals[0];
  if (!offer) throw new UsageError('which offer? give --offer ID (see: alacarte offers)', 'quote');
  const seconds = duration(values.for ?? positionals[1], 'quote');
  const q = await ctx.sdk({ wallet: false }).quote(offer, seconds);
  ctx.out(`${q.offer} for ${formatDuration(q.seconds)}: ${q.amount} ${q.unit}`, q);
  return 0;
};

/** `--max N`: the most the command may pay, whatever the server asks. */
function maxAmount(value: unknown, command: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^[0-9]{1,15}$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(`--max wants a whole amount, got '${String(value)}'`, command);
  }
  return n;
}

const rent: Handler = async (ctx, values, positionals, rest) => {
  noPositionals(positionals, 'rent');
  const offer = values.offer as string | undefined;
  if (!offer) throw new UsageError('which offer? give --offer ID (see: alacarte offers)', 'rent');
  const seconds = duration(values.for, 'rent');
  const ports = ((values.port as string[] | undefined) ?? []).map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65_535) throw new UsageError(`not a port: '${p}'`, 'rent');
    return n;
  });
  const env: Record<string, string> = {};
  for (const kv of (values.env as string[] | undefined) ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--env wants KEY=VALUE, got '${kv}'`, 'rent');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const sshKeys = sshKeysFor(values['ssh-key'] as string[] | undefined);
  await ctx.recover();
  const sdk = ctx.sdk({ wallet: true });
  const interrupt = cancelOnInterrupt(ctx, 'rent');
  let lease: Awaited<ReturnType<Alacarte['rent']>>;
  try {
    lease = await sdk.rent({
      offer,
      seconds,
      image: (values.image as string | undefined) ?? DEFAULT_IMAGE,
      ports,
      env: Object.keys(env).length ? env : undefined,
      command: rest.length ? rest : undefined,
      sshKeys,
      maxAmount: maxAmount(values.max, 'rent'),
    });
  } catch (err) {
    // The stop promised at the Ctrl-C cannot be made without the lease's answer.
    if (interrupt.cancelled)
      ctx.io.stderr.write(
        'alacarte rent: interrupted, and the answer did not come: the next alacarte command settles the payment (then: alacarte leases, and alacarte stop ID for a refund)\n',
      );
    throw err;
  } finally {
    interrupt.done();
  }
  ctx.progress.stop();
  if (interrupt.cancelled) {
    // What Ctrl-C meant: no lease. The one the payment bought is stopped and its time refunded.
    ctx.progress.start('stopping');
    const stopped = await sdk.stop(lease.id);
    ctx.progress.stop();
    const balance = ctx.wallet().balance();
    ctx.io.stderr.write(
      `alacarte rent: interrupted: lease ${lease.id} stopped as it started; refunded ${stopped.refunded} ${stopped.unit} of the ${lease.paid} paid\nbalance: ${balance.value} ${balance.unit}\n`,
    );
    return 130;
  }
  const { token: _token, change: _change, ...shown } = lease;
  const lines = [
    `lease ${lease.id} ${lease.state}: ${lease.offer}, ${lease.image}, paid ${lease.paid} ${lease.unit}, until ${formatWhen(lease.expires_at)} (${formatDuration(seconds)})`,
    ...Object.entries(lease.ports ?? {}).map(([port, url]) => `port ${port}: ${url}`),
    ...(lease.ssh ? [sshLine(lease.ssh, sshKeys.length > 0, identityFor(values['ssh-key']), ctx.home)] : []),
    `balance: ${ctx.wallet().balance().value} ${ctx.wallet().unit}`,
    `next: alacarte exec ${lease.id} -- uname -a | alacarte shell ${lease.id} | alacarte stop ${lease.id}`,
  ];
  ctx.out(lines.join('\n'), { ...shown, balance: Number(ctx.wallet().balance().value) });
  return 0;
};

/**
 * Ctrl-C while a paid request of `command` is under way. Before the payment is sent: the command
 * ends (130) and nothing is spent (a token prepared but not sent goes back on the next command).
 * Once it is sent, the node may be starting what it buys: for a rent, the first Ctrl-C asks the
 * caller to stop the lease once it is answered (`cancelled`) and a second one leaves at once; for
 * an extension (which cannot be undone but by a stop) it leaves at once. Leaving says how to find
 * what was bought. `done()` removes the handler.
 */
function cancelOnInterrupt(
  ctx: Context,
  command: 'rent' | 'extend',
  leaseId?: string,
): { readonly cancelled: boolean; done(): void } {
  let cancelled = false;
  ctx.step = undefined;
  const leave = (line: string) => {
    ctx.progress.stop();
    ctx.io.stderr.write(`alacarte ${command}: ${line}\n`);
    process.exit(130);
  };
  const onInt = () => {
    if (ctx.step !== 'send' && ctx.step !== 'change')
      return leave('interrupted before paying; nothing was spent');
    if (command === 'extend')
      return leave(
        `interrupted after the payment was sent: the extension of ${leaseId} may have been bought; the next alacarte command settles it (then: alacarte leases shows its deadline)`,
      );
    if (cancelled)
      return leave(
        'left as it is: the payment may have bought a lease, which runs and is paid for; the next alacarte command settles it (then: alacarte leases, and alacarte stop ID for a refund)',
      );
    cancelled = true;
    ctx.progress.stop();
    ctx.io.stderr.write(
      'alacarte rent: the payment is sent: the lease is stopped for a refund as soon as it has started (Ctrl-C again to leave it running)\n',
    );
  };
  process.on('SIGINT', onInt);
  return {
    get cancelled() {
      return cancelled;
    },
    done: () => process.off('SIGINT', onInt),
  };
}

/** Public key files ssh-copy-id would send when none is named: the user's usual ones. */
const DEFAULT_KEY_FILES = ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'];

/**
 * The public keys a lease is rented with: the `--ssh-key` files (each must hold a valid key), or
 * else whichever of ~/.ssh/id_{ed25519,ecdsa,rsa}.pub exist and parse. Public keys only.
 */
function sshKeysFor(files: string[] | undefined): string[] {
  if (files?.length) {
    return files.map((file) => {
      let line: string;
      try {
        line = readFileSync(file, 'utf8').trim();
      } catch {
        throw new UsageError(`--ssh-key: cannot read ${file}`, 'rent');
      }
      // ssh -i takes the private half, so it is the file people reach for: name the one to give.
      if (line.startsWith('-----BEGIN') && line.includes('PRIVATE KEY'))
        throw new UsageError(
          `--ssh-key ${file} is a private key (it stays with you): give its public key, ${file}.pub`,
          'rent',
        );
      const parsed = parseSshPublicKey(line);
      if (!parsed.ok) throw new UsageError(`--ssh-key ${file}: ${parsed.message}`, 'rent');
      return line;
    });
  }
  const keys: string[] = [];
  for (const name of DEFAULT_KEY_FILES) {
    try {
      const line = readFileSync(join(homedir(), '.ssh', name), 'utf8').trim();
      if (parseSshPublicKey(line).ok) keys.push(line);
    } catch {
      // No such key: fine.
    }
  }
  return keys;
}

/**
 * The private key beside a single `--ssh-key FILE.pub` (FILE), when it is not one ssh offers by
 * itself (`~/.ssh/id_*`): the printed command then names it with `-i`, so it works as shown.
 */
function identityFor(files: unknown): string | undefined {
  if (!Array.isArray(files) || files.length !== 1 || typeof files[0] !== 'string') return undefined;
  const file = files[0];
  if (!file.endsWith('.pub')) return undefined;
  const identity = file.slice(0, -'.pub'.length);
  if (!existsSync(identity)) return undefined;
  const usual = DEFAULT_KEY_FILES.map((name) => join(homedir(), '.ssh', name.slice(0, -'.pub'.length)));
  // Absolute: the line shown works from any directory, not only the one rent ran in.
  return usual.includes(resolve(identity)) ? undefined : resolve(identity);
}

/** How to log in to a lease over SSH, as the rent output shows it. */
function sshLine(
  ssh: { host: string; port: number; user: string },
  withKey: boolean,
  identity: string | undefined,
  home: string,
): string {
  const command = `ssh ${identity ? `-i ${identity} ` : ''}-p ${ssh.port} ${ssh.user}@${ssh.host}`;
  return withKey
    ? `ssh: ${command}`
    : `ssh: ${command}  (no SSH key sent: rent with --ssh-key FILE.pub, or log in with the lease's credential as password: its "token" in ${join(home, 'leases.json')})`;
}

const exec: Handler = async (ctx, values, positionals, rest) => {
  const id = leaseId(positionals, 'exec');
  if (!rest.length)
    throw new UsageError('which command? put it after --, e.g. alacarte exec ID -- uname -a', 'exec');
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1 || timeout > 3600)) {
    throw new UsageError('--timeout wants whole seconds from 1 to 3600', 'exec');
  }
  if (values.background) return execBackground(ctx, id, rest, values.stdin === true);
  // As ssh does: what is piped in goes to the command; a terminal is not read unless asked (--stdin).
  const readIn = !values['no-stdin'] && (values.stdin === true || process.stdin.isTTY !== true);
  const stdin = readIn ? await readStdin(EXEC_STDIN_MAX) : undefined;
  ctx.progress.start('running');
  const started = Date.now();
  // Bytes both ways: the command's input and output pass through unchanged.
  const result = await ctx.sdk({ wallet: false }).execBytes(id, rest, {
    stdin: stdin?.length ? stdin : undefined,
    timeoutSeconds: timeout,
  });
  ctx.progress.stop();
  if (ctx.json) {
    ctx.out('', {
      exit_code: result.exit_code,
      stdout: Buffer.from(result.stdout).toString('utf8'),
      stderr: Buffer.from(result.stderr).toString('utf8'),
      truncated: result.truncated,
    });
  } else {
    ctx.io.stdout.write(result.stdout);
    ctx.io.stderr.write(result.stderr);
    if (result.truncated) ctx.io.stderr.write('alacarte exec: output truncated by the node\n');
    // The node kills a command at its timeout (SIGKILL: 137) and its answer does not say why; a
    // bare 137 after that long is that, and the way out is a flag the user may not know.
    const limit = timeout ?? EXEC_DEFAULT_TIMEOUT;
    if (result.exit_code === 137 && Date.now() - started >= limit * 1000)
      ctx.io.stderr.write(
        `alacarte exec: killed after ${limit} s, the exec's time limit; allow longer with --timeout SECONDS (at most 3600), or run it with --background\n`,
      );
  }
  return result.exit_code;
};

/** The node's exec time limit when none is asked for, in seconds (POST /v1/leases/{id}/exec). */
const EXEC_DEFAULT_TIMEOUT = 30;

/** The most stdin `exec` sends, in bytes: the node takes no more (and its body limit may take less). */
const EXEC_STDIN_MAX = 1024 * 1024;

/** All of this process's stdin, refusing more than `max` bytes rather than holding it. */
async function readStdin(max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > max) {
      process.stdin.destroy();
      throw new UsageError(
        `stdin is over ${max} bytes; send large files with a file transfer instead`,
        'exec',
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}

/** `exec --background`: starts the command detached and prints its pid inside the sandbox. */
async function execBackground(ctx: Context, id: string, command: string[], stdin: boolean): Promise<number> {
  if (stdin) throw new UsageError('--background runs without input: drop --stdin', 'exec');
  ctx.progress.start('starting');
  const result = await ctx.sdk({ wallet: false }).execBackground(id, command);
  ctx.progress.stop();
  if (result.started) {
    ctx.out(`started in the background: pid ${result.pid} (output discarded)`, result);
    return 0;
  }
  if (ctx.json) ctx.out('', result);
  else ctx.io.stderr.write(result.stderr);
  return result.exit_code;
}

const extend: Handler = async (ctx, values, positionals) => {
  const id = leaseId(positionals, 'extend');
  const seconds = duration(values.for, 'extend');
  await ctx.recover();
  const before = ctx.wallet().balance();
  const interrupt = cancelOnInterrupt(ctx, 'extend', id);
  let lease: Awaited<ReturnType<Alacarte['extend']>>;
  try {
    lease = await ctx
      .sdk({ wallet: true })
      .extend(id, seconds, { maxAmount: maxAmount(values.max, 'extend') });
  } finally {
    interrupt.done();
  }
  ctx.progress.stop();
  const balance = ctx.wallet().balance();
  ctx.out(
    `lease ${lease.id} extended by ${formatDuration(seconds)} for ${before.sub(balance).value} ${balance.unit}: now until ${formatWhen(lease.expires_at)}\nbalance: ${balance.value} ${balance.unit}`,
    {
      ...lease,
      change: undefined,
      balance: Number(balance.value),
    },
  );
  return 0;
};

const stop: Handler = async (ctx, _values, positionals) => {
  const id = leaseId(positionals, 'stop');
  await ctx.recover();
  const sdk = ctx.sdk({ wallet: true });
  // The node answers a second stop with the first one's refund: say it is not a new one, or the
  // same "refunded N" with an unchanged balance reads as money gone missing.
  const already = sdk.leases().find((l) => l.id === id)?.state === 'stopped';
  ctx.progress.start('stopping');
  let stopped: StoppedLease;
  try {
    stopped = await sdk.stop(id);
  } catch (err) {
    // What stop is for (the lease no longer runs, nothing more is charged) already holds.
    if (err instanceof AlacarteApiError && err.code === 'lease_not_running')
      return endedBefore(ctx, sdk, id, err);
    throw err;
  } finally {
    ctx.progress.stop();
  }
  const balance = ctx.wallet().balance();
  // The tokens went into the wallet; only their mints and amounts are shown.
  const { refund: _refund, refunds, ...shown } = stopped;
  const said = already
    ? `lease ${stopped.id} was already ${stopped.state}; its refund of ${stopped.refunded} ${stopped.unit} came into the wallet then`
    : `lease ${stopped.id} ${stopped.state}; refunded ${stopped.refunded} ${stopped.unit}`;
  ctx.out(`${said}\nbalance: ${balance.value} ${balance.unit}`, {
    ...shown,
    ...(refunds ? { refunds: refunds.map(({ mint, amount }) => ({ mint, amount })) } : {}),
    balance: Number(balance.value),
  });
  return 0;
};

/**
 * `stop` of a lease that ended without a stop (it expired, or failed): the node keeps no unused
 * time for it, so nothing comes back. Said with the node's own words and its state, exit 0 as for
 * a second stop: the lease is not running, which is what was asked.
 */
async function endedBefore(
  ctx: Context,
  sdk: Alacarte,
  id: string,
  refused: AlacarteApiError,
): Promise<number> {
  // The lease as the node has it (this also records its end in the lease list); the refusal's
  // words alone when the node does not answer that.
  const lease = await sdk.status(id).catch(() => undefined);
  const state = lease?.state ?? 'ended';
  const balance = ctx.wallet().balance();
  const when = lease && state === 'expired' ? `, at ${formatWhen(lease.expires_at)}` : '';
  ctx.out(
    `lease ${id} had already ended (the node says: ${refused.message}${when}); nothing to refund\nbalance: ${balance.value} ${balance.unit}`,
    {
      ...(lease ?? { id, state }),
      refund: null,
      refunded: 0,
      message: refused.message,
      balance: Number(balance.value),
    },
  );
  return 0;
}

export function amountArg(value: string | undefined, command: string, unit = 'sat'): Amount {
  const a = value === undefined ? undefined : Amount.parse(value, unit);
  if (!a || a.isZero()) throw new UsageError(`how much? give a whole number of ${unit}, e.g. 100`, command);
  return a;
}

/** What became of a collected refund, for the line that tells it. */
function refundFate(c: CollectedRefund): string {
  if (c.received >= c.refunded) return `refunded ${c.refunded} ${c.unit} into the wallet`;
  if (c.pending)
    return `its refund of ${c.refunded} ${c.unit} is redeemed into the wallet once the mint answers (any later command)`;
  const got = c.received > 0 ? `only ${c.received} ${c.unit} of it came into the wallet: ` : '';
  return `its refund was ${c.refunded} ${c.unit}; ${got}it had been redeemed elsewhere first (by whoever stopped it)`;
}
