import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import qrcode from 'qrcode-terminal';
import type { Amount } from '../../core/amount.js';
import { WalletOperationError } from '../../wallet/errors.js';
import { LocalWallet } from '../../wallet/local-wallet.js';
import { amountArg, type Context, type Handler } from './commands.js';
import { UsageError } from './ui.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** `--mint` as given, without a trailing slash; undefined when not given. */
function mintFlag(values: Record<string, unknown>): string | undefined {
  return typeof values.mint === 'string' ? values.mint.replace(/\/+$/, '') : undefined;
}

/** The mints the node takes (its offers' `payment.cashu.mints`); throws when it does not answer. */
async function acceptedMints(ctx: Context): Promise<string[]> {
  const offers = await ctx.sdk({ wallet: false }).offers();
  return offers.payment.cashu.mints.map((m) => m.replace(/\/+$/, ''));
}

/** The mint to use: --mint, else the first mint the node accepts. */
async function mintOf(ctx: Context, values: Record<string, unknown>): Promise<string> {
  const mint = mintFlag(values) ?? (await acceptedMints(ctx))[0];
  if (!mint) throw new WalletOperationError(`the node at ${ctx.url} names no mint`);
  return mint;
}

/**
 * The mint a `wallet send` token is drawn from: --mint; else the first mint the node (--url,
 * ALACARTE_URL or the default) takes that holds `amount` (a token sent is most often one to pay
 * that node with); else the first mint that holds it, said on stderr. Throws
 * InsufficientFundsError when no mint holds enough.
 */
async function sendMintOf(
  ctx: Context,
  values: Record<string, unknown>,
  wallet: LocalWallet,
  amount: Amount,
): Promise<string> {
  const named = mintFlag(values);
  if (named !== undefined) return named;
  const accepted = await acceptedMints(ctx).catch(() => undefined);
  const held = wallet.balances().find((b) => b.amount.gte(amount));
  if (accepted) {
    // The node's own when they hold it; else (a token for someone else, say) a mint that does,
    // said, since that node would refuse it.
    const own = accepted.find((m) => wallet.balance(m).gte(amount));
    if (own !== undefined || held === undefined) return own ?? wallet.mintFor(accepted, amount);
    ctx.io.stderr.write(
      `alacarte: not enough ecash of the mint the node at ${ctx.url} takes; the token is ecash of ${held.mint}, which that node does not take\n`,
    );
    return held.mint;
  }
  if (!held)
    throw new WalletOperationError(`the node at ${ctx.url} does not answer: name the mint with --mint`);
  ctx.io.stderr.write(
    `alacarte: the node at ${ctx.url} does not answer; the token is ecash of ${held.mint}\n`,
  );
  return held.mint;
}

/**
 * The warning to show when `mint` runs a test Lightning backend (its /v1/info says
 * `lightning.test`), else undefined. Best effort: a mint that does not answer gets no warning
 * here, and the topup itself reports it.
 */
export async function testMintWarning(mint: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${mint}/v1/info`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    const text = await res.text();
    if (text.length > 256 * 1024) return undefined;
    const info = JSON.parse(text) as { lightning?: { test?: unknown; backend?: unknown } };
    if (info.lightning?.test !== true) return undefined;
    const backend =
      typeof info.lightning.backend === 'string' ? ` '${info.lightning.backend.slice(0, 32)}'` : '';
    return `WARNING: this mint's Lightning backend${backend} is a test backend: the invoice pays itself, no real money moves, and this ecash is worth nothing.`;
  } catch {
    return undefined;
  }
}

function balanceLine(wallet: LocalWallet): string {
  const b = wallet.balance();
  return `balance: ${b.value} ${b.unit}`;
}

const topup: Handler = async (ctx, values, positionals) => {
  const amount = amountArg(positionals[0], 'wallet topup');
  await ctx.recover();
  const wallet = ctx.wallet();
  const mint = await mintOf(ctx, values);
  const t = await wallet.createTopup(mint, amount);
  const warning = await testMintWarning(mint);
  // Beside the invoice it is about; with --json, stdout carries only the answer.
  if (warning) (ctx.json ? ctx.io.stderr : ctx.io.stdout).write(`${warning}\n`);
  if (ctx.json && values['no-wait']) {
    ctx.out('', { quote: t.quote, invoice: t.request, amount: Number(amount.value), mint, expiry: t.expiry });
    return 0;
  }
  if (!ctx.json) {
    ctx.io.stdout.write(
      `Pay this Lightning invoice of ${amount.value} ${amount.unit} to top up the wallet:\n\n${t.request}\n\n`,
    );
    // The QR code is for a person with a phone wallet in front of a terminal; in a pipe or a file
    // it is only noise around the invoice text, which is what a program wants.
    if (!values['no-qr'] && ctx.io.stdout.isTTY === true)
      qrcode.generate(t.request.toUpperCase(), { small: true }, (qr) => ctx.io.stdout.write(`${qr}\n`));
  }
  // In --json mode stdout carries one JSON answer at the end; the invoice to pay goes to stderr now.
  if (ctx.json) ctx.io.stderr.write(`invoice: ${t.request}\n`);
  if (values['no-wait']) {
    ctx.io.stdout.write('not waiting: the next wallet command mints it once it is paid\n');
    return 0;
  }
  ctx.progress.start('waiting for the payment');
  // Ctrl-C stops waiting, not the topup: the invoice stays recorded and is minted once paid.
  const stopWaiting = new AbortController();
  const onInterrupt = () => stopWaiting.abort();
  process.once('SIGINT', onInterrupt);
  let added: Awaited<ReturnType<typeof wallet.completeTopup>>;
  try {
    added = await wallet.completeTopup(t.opId, { pollMs: 1000, signal: stopWaiting.signal });
  } catch (err) {
    if (!stopWaiting.signal.aborted) throw err;
    ctx.progress.stop();
    ctx.io.stderr.write(
      'alacarte wallet topup: stopped waiting; once the invoice is paid, any wallet command mints it\n',
    );
    return 130;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
  ctx.progress.stop();
  ctx.out(`added ${added.value} ${added.unit} — ${balanceLine(wallet)}`, {
    added: Number(added.value),
    balance: Number(wallet.balance().value),
    unit: wallet.unit,
    mint,
    invoice: t.request,
  });
  return 0;
};

const balance: Handler = async (ctx, _values, positionals) => {
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`, 'wallet balance');
  await ctx.recover();
  const wallet = ctx.wallet();
  const total = wallet.balance();
  const perMint = wallet.balances();
  const pending = wallet.pending();
  const lines = [`${total.value} ${total.unit}`];
  if (perMint.length > 1)
    for (const b of perMint) lines.push(`  ${b.amount.value} ${b.amount.unit}  ${b.mint}`);
  const held = pending.filter((p) => p.kind !== 'mint' && p.kind !== 'refund');
  if (held.length) {
    const sum = held.reduce((n, p) => n + p.amount.value, 0n);
    lines.push(`(${sum} ${total.unit} in unsettled operations; they settle when the node is reachable)`);
  }
  const unpaid = pending.filter((p) => p.kind === 'mint');
  if (unpaid.length) lines.push(`(${unpaid.length} topup invoice(s) not paid yet)`);
  ctx.out(lines.join('\n'), {
    balance: Number(total.value),
    unit: total.unit,
    mints: perMint.map((b) => ({ mint: b.mint, balance: Number(b.amount.value) })),
    pending: pending.map((p) => ({ kind: p.kind, mint: p.mint, amount: Number(p.amount.value) })),
  });
  return 0;
};

const send: Handler = async (ctx, values, positionals) => {
  const amount = amountArg(positionals[0], 'wallet send');
  await ctx.recover();
  const wallet = ctx.wallet();
  const mint = await sendMintOf(ctx, values, wallet, amount);
  ctx.progress.start('preparing the token');
  const { opId, token } = await wallet.send(mint, amount);
  ctx.progress.stop();
  ctx.out(token, { token, amount: Number(amount.value), unit: wallet.unit, mint });
  // Once the token is out, it is spent as far as this wallet is concerned.
  await new Promise<void>((resolve) => ctx.io.stdout.write('', () => resolve()));
  wallet.confirmSent(opId);
  if (!ctx.json) ctx.io.stderr.write(`sent ${amount.value} ${amount.unit} — ${balanceLine(wallet)}\n`);
  return 0;
};

const receive: Handler = async (ctx, _values, positionals) => {
  const arg = positionals[0];
  if (!arg) throw new UsageError("which token? give it, or '-' to read it from stdin", 'wallet receive');
  const token = arg === '-' ? readFileSync(0, 'utf8').trim() : arg;
  await ctx.recover();
  const wallet = ctx.wallet();
  ctx.progress.start('redeeming the token');
  const got = await wallet.receive(token);
  ctx.progress.stop();
  ctx.out(`received ${got.value} ${got.unit} — ${balanceLine(wallet)}`, {
    received: Number(got.value),
    balance: Number(wallet.balance().value),
    unit: wallet.unit,
  });
  return 0;
};

const withdraw: Handler = async (ctx, values, positionals) => {
  const invoice = positionals[0];
  if (!invoice) throw new UsageError('which invoice? give a BOLT11 payment request', 'wallet withdraw');
  await ctx.recover();
  const wallet = ctx.wallet();
  const mint = typeof values.mint === 'string' ? values.mint : await mintOf(ctx, values);
  ctx.progress.start('paying the invoice');
  const paid = await wallet.withdraw(invoice, mint);
  ctx.progress.stop();
  ctx.out(
    `paid ${paid.amount.value} ${paid.amount.unit} (fee ${paid.fee.value} ${paid.fee.unit}) — ${balanceLine(wallet)}${paid.preimage ? `\npreimage: ${paid.preimage}` : ''}`,
    {
      paid: Number(paid.amount.value),
      fee: Number(paid.fee.value),
      balance: Number(wallet.balance().value),
      unit: wallet.unit,
      preimage: paid.preimage,
    },
  );
  return 0;
};

const restore: Handler = async (ctx, values, positionals) => {
  if (positionals.length)
    throw new UsageError(
      'give the seed phrase on stdin with --seed-phrase-stdin, not as arguments',
      'wallet restore',
    );
  if (values['seed-phrase-stdin']) {
    const phrase = readFileSync(0, 'utf8').trim().split(/\s+/).join(' ');
    const current = ctx.wallet({ announceNew: false });
    if (current.mnemonic !== phrase) {
      if (!current.balance().isZero() || current.pendingOps().length) {
        throw new WalletOperationError(
          'this wallet holds ecash under another seed phrase; set ALACARTE_HOME to an empty directory to restore there',
        );
      }
      // An empty wallet of another seed: replace it by one of the given seed.
      const path = current.path;
      current.close();
      rmSync(path);
      const replaced = LocalWallet.open({ home: join(path, '..'), mnemonic: phrase });
      replaced.close();
      ctx.resetWallet();
    }
  }
  await ctx.recover();
  const wallet = ctx.wallet();
  const mint = await mintOf(ctx, values);
  ctx.progress.start(`asking ${mint} for this seed's ecash`);
  const found = await wallet.restore(mint);
  ctx.progress.stop();
  ctx.out(`restored ${found.value} ${found.unit} — ${balanceLine(wallet)}`, {
    restored: Number(found.value),
    balance: Number(wallet.balance().value),
    unit: wallet.unit,
  });
  return 0;
};

const seed: Handler = async (ctx) => {
  const wallet = ctx.wallet();
  ctx.out(wallet.mnemonic, { mnemonic: wallet.mnemonic });
  return 0;
};

const MINT: Options = { mint: { type: 'string' } };

const COMMANDS: Record<string, { options: Options; run: Handler }> = {
  topup: { options: { ...MINT, 'no-wait': { type: 'boolean' }, 'no-qr': { type: 'boolean' } }, run: topup },
  balance: { options: {}, run: balance },
  send: { options: MINT, run: send },
  receive: { options: {}, run: receive },
  withdraw: { options: MINT, run: withdraw },
  restore: { options: { ...MINT, 'seed-phrase-stdin': { type: 'boolean' } }, run: restore },
  seed: { options: {}, run: seed },
};

export function walletCommand(name: string): { options: Options; run: Handler } | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}
