import './style.css';
import { MintOperationError, NetworkError, RateLimitError } from '@cashu/cashu-ts';
import QRCode from 'qrcode';
import {
  ApiError,
  createLease,
  extendLease,
  getLease,
  getOffers,
  getQuote,
  type Lease,
  type OfferInfo,
  type Offers,
  priceOf,
  stopLease,
  testBackendOf,
} from './api.js';
import { explain, Sentence } from './errors.js';
import { setupFiles } from './files.js';
import { DEFAULT_IMAGE, defaultImage } from './images.js';
import { attachTerminal, type TerminalSession } from './terminal.js';
import { formatDuration, formatRemaining } from './time.js';
import { BrowserWallet, type Invoice, type Pending } from './wallet.js';

/** The lease this browser holds: its id and bearer credential, kept across reloads. */
interface HeldLease {
  id: string;
  bearer: string;
  offer: string;
  expires_at: string;
  /** Port -> public URL, as the node answered. */
  ports?: Record<string, string>;
}

const LEASE_KEY = 'alacarte.lease.v1';
const DURATIONS = [
  60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800, 1209600, 2592000,
];

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`page is missing #${id}`);
  return found as T;
}

const ui = {
  balance: el('balance'),
  status: el('status'),
  testMoney: el('test-money'),
  offers: el('offers'),
  duration: el<HTMLInputElement>('duration'),
  durationLabel: el<HTMLOutputElement>('duration-label'),
  image: el<HTMLSelectElement>('image'),
  ports: el<HTMLInputElement>('ports'),
  leasePorts: el('lease-ports'),
  price: el<HTMLOutputElement>('price'),
  rentForm: el<HTMLFormElement>('rent-form'),
  rentButton: el<HTMLButtonElement>('rent-button'),
  leaseSection: el('lease'),
  leaseId: el('lease-id'),
  leaseOffer: el('lease-offer'),
  countdown: el<HTMLTimeElement>('countdown'),
  terminalState: el('terminal-state'),
  terminal: el('terminal'),
  extendForm: el<HTMLFormElement>('extend-form'),
  extendSeconds: el<HTMLSelectElement>('extend-minutes'),
  extendButton: el<HTMLButtonElement>('extend'),
  extendPrice: el('extend-price'),
  stop: el<HTMLButtonElement>('stop'),
  topupForm: el<HTMLFormElement>('topup-form'),
  topupAmount: el<HTMLInputElement>('topup-amount'),
  topupButton: el<HTMLButtonElement>('topup'),
  invoice: el('invoice'),
  invoiceQr: el<HTMLCanvasElement>('invoice-qr'),
  invoiceText: el<HTMLTextAreaElement>('invoice-text'),
  invoiceCopy: el<HTMLButtonElement>('invoice-copy'),
  invoiceStatus: el('invoice-status'),
  receiveForm: el<HTMLFormElement>('receive-form'),
  receiveToken: el<HTMLTextAreaElement>('receive-token'),
  receiveButton: el<HTMLButtonElement>('receive'),
  backup: el<HTMLButtonElement>('backup'),
  backupBox: el('backup-box'),
  backupToken: el<HTMLTextAreaElement>('backup-token'),
  backupCopy: el<HTMLButtonElement>('backup-copy'),
  backupDownload: el<HTMLButtonElement>('backup-download'),
  walletNews: el('wallet-news'),
};

let node: Offers | undefined;
let wallet: BrowserWallet | undefined;
let session: TerminalSession | undefined;
let countdownTimer: number | undefined;
let leaseTimer: number | undefined;
let leaseQueue: Promise<unknown> = Promise.resolve();
let following: Promise<void> | undefined;
let invoiceWait: AbortController | undefined;
let quoteSeq = 0;

function say(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
}

function messageOf(err: unknown): string {
  return explain(err);
}

function unit(): string {
  return node?.unit ?? 'sat';
}

function showBalance(balance: number): void {
  ui.balance.textContent = `${balance} ${unit()}`;
}

/** Runs a user action with its button disabled, reporting failures in the status line. */
async function busy(button: HTMLButtonElement, action: () => Promise<void>): Promise<void> {
  button.disabled = true;
  try {
    await action();
  } catch (err) {
    say(messageOf(err), true);
  } finally {
    button.disabled = false;
  }
}

// ---- offers, duration and price ----

function selectedOffer(): OfferInfo | undefined {
  const checked = ui.offers.querySelector<HTMLInputElement>('input[name="offer"]:checked');
  return node?.offers.find((o) => o.id === checked?.value);
}

function durationsFor(offer: OfferInfo): number[] {
  const list = DURATIONS.filter((s) => s >= offer.min_seconds && s <= offer.max_seconds);
  return list.length > 0 ? list : [offer.min_seconds];
}

function selectedSeconds(): number | undefined {
  const offer = selectedOffer();
  if (!offer) return undefined;
  const list = durationsFor(offer);
  return list[Math.min(Number(ui.duration.value), list.length - 1)];
}

function renderOffers(offers: Offers): void {
  ui.offers.replaceChildren();
  offers.offers.forEach((offer, i) => {
    const label = document.createElement('label');
    label.className = 'offer';
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'offer';
    input.value = offer.id;
    input.checked = i === 0;
    input.disabled = offer.available === 0;
    input.addEventListener('change', () => updateDuration());
    const name = document.createElement('strong');
    name.textContent = offer.id;
    const spec = document.createElement('span');
    spec.className = 'spec';
    spec.textContent =
      `${offer.vcpu} vCPU · ${formatMib(offer.memory_mib)} RAM · ${formatMib(offer.disk_mib)} disk · ` +
      (offer.network === 'egress' ? `internet ${offer.bandwidth_mbit ?? '?'} Mbit/s · ` : 'no network · ') +
      `${offer.price.amount_per_hour} ${offer.price.unit}/hour · ${offer.available} free`;
    label.append(input, name, spec);
    ui.offers.append(label);
  });
  ui.image.replaceChildren(
    ...offers.images.map((image) => {
      const option = document.createElement('option');
      option.value = image;
      option.textContent = offers.imageLabels[image] ?? image;
      return option;
    }),
  );
  // The same default as the CLI's and the agents' (images.ts); the picker offers the rest.
  ui.image.value = defaultImage(offers.images) ?? '';
  const first = offers.offers[0];
  if (first) {
    // max before value: a range input clamps the value to the max it has at that moment.
    const list = durationsFor(first);
    ui.duration.max = String(list.length - 1);
    ui.duration.value = String(Math.max(0, list.indexOf(3600)));
  }
  updateDuration();
}

function formatMib(mib: number): string {
  return mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

function updateDuration(): void {
  const offer = selectedOffer();
  if (!offer) return;
  const list = durationsFor(offer);
  ui.duration.max = String(list.length - 1);
  if (Number(ui.duration.value) > list.length - 1) ui.duration.value = String(list.length - 1);
  const seconds = selectedSeconds() ?? offer.min_seconds;
  const label = formatDuration(seconds);
  ui.durationLabel.textContent = label;
  ui.duration.setAttribute('aria-valuetext', label);
  // The price shows at once from the published rate, then the node's quote confirms it.
  const local = priceOf(offer, seconds);
  ui.price.textContent = `${local} ${offer.price.unit}`;
  ui.rentButton.textContent = `Rent for ${local} ${offer.price.unit}`;
  const seq = ++quoteSeq;
  getQuote(offer.id, seconds)
    .then((amount) => {
      if (seq !== quoteSeq) return;
      ui.price.textContent = `${amount} ${offer.price.unit}`;
      ui.rentButton.textContent = `Rent for ${amount} ${offer.price.unit}`;
    })
    .catch(() => undefined);
}

// ---- the lease ----

function heldLease(): HeldLease | undefined {
  try {
    const parsed = JSON.parse(localStorage.getItem(LEASE_KEY) ?? 'null') as HeldLease | null;
    return parsed && typeof parsed.id === 'string' && typeof parsed.bearer === 'string' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function holdLease(held: HeldLease | undefined): void {
  if (held) localStorage.setItem(LEASE_KEY, JSON.stringify(held));
  else localStorage.removeItem(LEASE_KEY);
}

/**
 * How often the page asks the node about the lease it shows: the node ends leases on its own (at
 * the deadline, or when the sandbox died) and the page follows without a reload.
 */
const LEASE_POLL_MS = 5000;

function showLease(held: HeldLease): void {
  ui.leaseSection.hidden = false;
  ui.leaseId.textContent = held.id;
  ui.leaseOffer.textContent = held.offer;
  showPorts(held.ports ?? {});
  tickCountdown();
  window.clearInterval(countdownTimer);
  countdownTimer = window.setInterval(tickCountdown, 1000);
  window.clearInterval(leaseTimer);
  leaseTimer = window.setInterval(() => void followLease(), LEASE_POLL_MS);
  session?.close();
  ui.terminalState.textContent = 'connecting…';
  session = attachTerminal({
    container: ui.terminal,
    leaseId: held.id,
    bearer: held.bearer,
    // Its own line, so the connection's news never hides what the last action said.
    onStatus: (text) => {
      ui.terminalState.textContent = text;
      // The node closes the terminal when the lease ends: look at once rather than at the next poll.
      if (text === 'disconnected') void followLease();
    },
  });
  updateExtendPrice();
  ui.leaseSection.scrollIntoView({ block: 'start' });
}

/** Links to the lease's published ports: what a server in the sandbox serves, for anyone. */
function showPorts(ports: Record<string, string>): void {
  const entries = Object.entries(ports);
  ui.leasePorts.hidden = entries.length === 0;
  ui.leasePorts.replaceChildren();
  if (!entries.length) return;
  ui.leasePorts.append('Published ports: ');
  entries.forEach(([port, url], i) => {
    const a = document.createElement('a');
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = `${port} → ${url}`;
    if (i > 0) ui.leasePorts.append(' · ');
    ui.leasePorts.append(a);
  });
}

/** The ports field: "8080, 3000" → [8080, 3000]; a clear error for anything else. */
function requestedPorts(): number[] | undefined {
  const text = ui.ports.value.trim();
  if (!text) return undefined;
  const ports = text.split(/[\s,]+/).map((p) => (/^[0-9]{1,5}$/.test(p) ? Number(p) : 0));
  if (ports.some((p) => p < 1 || p > 65_535))
    throw new Sentence('Ports are numbers from 1 to 65535, e.g. 8080, 3000.');
  if (new Set(ports).size !== ports.length) throw new Sentence('Name each port once.');
  if (ports.length > 16) throw new Sentence('At most 16 ports.');
  return ports;
}

function hideLease(): void {
  session?.close();
  session = undefined;
  window.clearInterval(countdownTimer);
  window.clearInterval(leaseTimer);
  ui.leaseSection.hidden = true;
  holdLease(undefined);
}

function tickCountdown(): void {
  const held = heldLease();
  if (!held) return;
  const left = Math.max(0, Math.floor((Date.parse(held.expires_at) - Date.now()) / 1000));
  ui.countdown.dateTime = held.expires_at;
  ui.countdown.textContent = left > 0 ? formatRemaining(left) : 'expired';
  ui.countdown.title = `until ${new Date(held.expires_at).toLocaleString()}`;
  // The deadline passed here: ask the node (which ends the lease within a second or two).
  if (left === 0) void followLease();
}

function updateExtendPrice(): void {
  const held = heldLease();
  const offer = node?.offers.find((o) => o.id === held?.offer);
  ui.extendPrice.textContent = offer ? `${priceOf(offer, Number(ui.extendSeconds.value))} ${unit()}` : '';
}

/**
 * Runs actions on the held lease one at a time (the user's Stop and Extend, the page's polling), so
 * a refund is never fetched twice and no action works on a lease another one just ended.
 */
function leaseTurn<T>(action: () => Promise<T>): Promise<T> {
  const run = leaseQueue.then(action, action);
  leaseQueue = run.catch(() => undefined);
  return run;
}

/** Asks the node about the held lease and follows it: a new deadline, or its end. */
function followLease(): Promise<void> {
  if (following) return following;
  following = leaseTurn(refreshLease)
    .catch(() => undefined) // unreachable: asked again at the next poll
    .finally(() => {
      following = undefined;
    });
  return following;
}

/** Asks the node about the held lease, inside a leaseTurn: shows it running, or settles its end. */
async function refreshLease(): Promise<void> {
  const held = heldLease();
  if (!held) return;
  let lease: Lease;
  try {
    lease = await getLease(held.id, held.bearer);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      hideLease();
      say(`Your sandbox ${held.id} is no longer known to this node.`);
      return;
    }
    throw err;
  }
  if (lease.state === 'running') {
    if (lease.expires_at !== held.expires_at) holdLease({ ...held, expires_at: lease.expires_at });
    if (ui.leaseSection.hidden) showLease({ ...held, expires_at: lease.expires_at });
    else tickCountdown();
    return;
  }
  await leaseEnded(held, lease);
}

/** The node ended the held lease: the page says how, and takes any refund into the wallet. */
async function leaseEnded(held: HeldLease, lease: Lease): Promise<void> {
  if (lease.state !== 'stopped') {
    hideLease();
    if (lease.state === 'expired') {
      const at = new Date(lease.expires_at).toLocaleTimeString();
      say(
        `Your sandbox ${held.id} expired at ${at}: its time was used up. Rent another one when you need it.`,
      );
    } else {
      say(`Your sandbox ${held.id} has ended (${lease.state}).`);
    }
    return;
  }
  // Stopped by the node before its time (its sandbox died, e.g. out of memory): the unused time
  // was refunded, and DELETE hands the refund over (the same answer on every call). Until that
  // answer is in, the lease stays held so the next poll tries again.
  const stopped = await stopLease(held.id, held.bearer);
  hideLease();
  const { received } = await takeRefund(stopped);
  say(
    `Your sandbox ${held.id} stopped before its time (its processes ended, e.g. out of memory); ` +
      `${received} ${unit()} for the unused time came back to your wallet.`,
  );
}

/** Gives a token the node refused back to the wallet; one it kept (spent) is gone. */
async function takeBack(w: BrowserWallet, token: string, err: unknown): Promise<void> {
  if (err instanceof ApiError && err.code !== 'token_spent') {
    await w.receive(token).catch(() => undefined);
  }
  w.settle(token);
}

async function rent(): Promise<void> {
  const w = needWallet();
  const offer = selectedOffer();
  const seconds = selectedSeconds();
  if (!offer || seconds === undefined) throw new Sentence('Choose a size first.');
  // A lease the node ended since the last poll no longer stands in the way.
  if (heldLease()) await followLease();
  if (heldLease()) throw new Sentence('Stop your current sandbox before renting another.');
  const ports = requestedPorts();
  const request = {
    offer: offer.id,
    seconds,
    image: ui.image.value || DEFAULT_IMAGE,
    ...(ports ? { ports } : {}),
  };
  const price = await getQuote(offer.id, seconds);
  if (w.balance() < price) throw new Sentence(`Not enough ecash: ${price} ${unit()} needed. Top up first.`);
  say(`Paying ${price} ${unit()}…`);
  const { token } = await w.pay(price, { kind: 'rent', request });
  try {
    await finishRent(w, token, request);
  } catch (err) {
    if (unreachable(err)) {
      throw new Sentence(
        'The node did not answer; your payment is kept and retried when you reload the page.',
      );
    }
    throw err;
  }
}

async function finishRent(
  w: BrowserWallet,
  token: string,
  request: Extract<Pending, { kind: 'rent' }>['request'],
): Promise<void> {
  let lease: Lease;
  try {
    lease = await createLease(request, token);
  } catch (err) {
    if (err instanceof ApiError) await takeBack(w, token, err);
    throw err;
  }
  if (!lease.token) throw new Sentence('The node did not hand over the lease credential.');
  const held = {
    id: lease.id,
    bearer: lease.token,
    offer: lease.offer,
    expires_at: lease.expires_at,
    ports: lease.ports,
  };
  holdLease(held);
  w.settle(token);
  if (lease.change) await w.receive(lease.change, true);
  say(`Sandbox ${lease.id} is running.`);
  showLease(held);
}

function extend(): Promise<void> {
  return leaseTurn(async () => {
    const w = needWallet();
    const held = heldLease();
    if (!held) throw new Sentence('There is no sandbox to extend.');
    const seconds = Number(ui.extendSeconds.value);
    const price = await getQuote(held.offer, seconds);
    say(`Paying ${price} ${unit()} to extend…`);
    const { token } = await w.pay(price, { kind: 'extend', request: { id: held.id, seconds } });
    let lease: Lease;
    try {
      lease = await extendLease(held.id, seconds, token);
    } catch (err) {
      if (err instanceof ApiError) await takeBack(w, token, err);
      // The lease ended meanwhile (the token came back whole): show how.
      if (err instanceof ApiError && err.code === 'lease_not_running') return refreshLease();
      throw err;
    }
    w.settle(token);
    holdLease({ ...held, expires_at: lease.expires_at });
    tickCountdown();
    if (lease.change) await w.receive(lease.change, true);
    say(
      `Extended by ${formatDuration(seconds)}: now until ${new Date(lease.expires_at).toLocaleTimeString()}.`,
    );
  });
}

function stop(): Promise<void> {
  return leaseTurn(async () => {
    needWallet();
    const held = heldLease();
    // Ended by the node a moment ago (the status line says how): nothing left to stop.
    if (!held) return;
    say('Stopping…');
    let lease: Lease;
    try {
      lease = await stopLease(held.id, held.bearer);
    } catch (err) {
      // It had already ended (expired, say): show that instead of an error.
      if (err instanceof ApiError && (err.code === 'lease_not_running' || err.status === 401))
        return refreshLease();
      throw err;
    }
    hideLease();
    const { refunded } = await takeRefund(lease);
    say(`Sandbox stopped. Refund of ${refunded} ${unit()} received.`);
  });
}

/**
 * Takes a stopped lease's refund into the wallet: the tokens of this node's mint are received,
 * others (the lease was extended with another mint's ecash) are shown for a wallet of that mint.
 */
async function takeRefund(lease: Lease): Promise<{ refunded: number; received: number }> {
  const w = needWallet();
  const refunded = lease.refunded ?? 0;
  // One token per mint the lease was paid at; this wallet holds only this node's mint's ecash.
  const refunds =
    lease.refunds ?? (lease.refund ? [{ mint: w.mintUrl, token: lease.refund, amount: refunded }] : []);
  const same = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
  const here = refunds.filter((r) => same(r.mint, w.mintUrl));
  const elsewhere = refunds.filter((r) => !same(r.mint, w.mintUrl));
  let received = 0;
  let taken = '';
  for (const r of here) {
    try {
      await w.receive(r.token, true);
      received += r.amount;
    } catch (err) {
      // Already spent: another wallet holding this lease's credential collected it first.
      if (!(err instanceof MintOperationError && err.code === 11001)) throw err;
      taken = ` ${r.amount} ${unit()} of it had already been collected elsewhere.`;
    }
  }
  ui.walletNews.textContent = `Refund: ${received} ${unit()} back in your wallet.${taken}`;
  // Someone extended the lease with another mint's ecash: that part comes back as that mint's
  // token, for a wallet of that mint.
  for (const r of elsewhere) {
    ui.walletNews.textContent += ` ${r.amount} ${unit()} came back from ${r.mint}, as this token for a wallet of that mint: ${r.token}`;
  }
  return { refunded, received };
}

/** fetch's TypeError, cashu-ts's NetworkError or RateLimitError: the other side never said no. */
function unreachable(err: unknown): boolean {
  return err instanceof TypeError || err instanceof NetworkError || err instanceof RateLimitError;
}

/** Finishes whatever a previous visit left half done (see wallet.ts `Pending`). */
async function recover(w: BrowserWallet): Promise<void> {
  for (const p of w.pending()) {
    try {
      if (p.kind === 'rent') await finishRent(w, p.token, p.request);
      else await w.receive(p.token, false).then(() => w.settle(p.token));
    } catch (err) {
      // Unreachable node or mint: still pending, tried again next visit. A refusal settles it.
      if (!unreachable(err)) w.settle(p.token);
    }
  }
}

/** On load: shows the held lease if it still runs, else how it ended (collecting its refund). */
async function restoreLease(): Promise<void> {
  if (!heldLease()) return;
  await leaseTurn(refreshLease);
}

// ---- the wallet ----

function needWallet(): BrowserWallet {
  if (!wallet)
    throw new Sentence('The wallet is not ready: the node’s mint did not answer. Reload the page.');
  return wallet;
}

async function topUp(): Promise<void> {
  const w = needWallet();
  const amount = Number(ui.topupAmount.value);
  if (!Number.isSafeInteger(amount) || amount < 1)
    throw new Sentence(`Enter a whole number of ${unit()}, 1 or more.`);
  invoiceWait?.abort();
  const invoice = await w.invoice(amount);
  await showInvoice(invoice);
  const wait = new AbortController();
  invoiceWait = wait;
  say(`Pay the invoice of ${amount} ${unit()} with any Lightning wallet.`);
  // The wait runs on after this action returns: the button is free for another invoice.
  w.mintWhenPaid(invoice, wait.signal)
    .then((minted) => {
      // The invoice is spent: take it off the screen so nobody pays it twice.
      ui.invoice.hidden = true;
      ui.walletNews.textContent = `Paid: +${minted} ${unit()} by Lightning.`;
      say(`Received ${minted} ${unit()} by Lightning.`);
    })
    .catch((err) => {
      if (!wait.signal.aborted) say(messageOf(err), true);
    });
}

async function showInvoice(invoice: Invoice): Promise<void> {
  ui.invoice.hidden = false;
  ui.invoiceText.value = invoice.request;
  ui.invoiceStatus.textContent = 'Waiting for payment…';
  await QRCode.toCanvas(ui.invoiceQr, `lightning:${invoice.request}`.toUpperCase(), {
    errorCorrectionLevel: 'M',
    margin: 1,
    width: 240,
  });
}

async function copy(text: string, field: HTMLTextAreaElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // The Clipboard API needs a secure context; plain HTTP on a LAN falls back to selection.
    field.focus();
    field.select();
    document.execCommand('copy');
  }
  say('Copied.');
}

function backup(): void {
  const w = needWallet();
  const token = w.backup();
  ui.backupBox.hidden = false;
  ui.backupToken.value = token;
  ui.backupToken.focus();
  ui.backupToken.select();
  say(`Backup token of ${w.balance()} ${unit()} ready: copy or download it.`);
}

/** Saves the backup token as a file, made in the page: nothing leaves the browser. */
function download(token: string): void {
  const url = URL.createObjectURL(new Blob([`${token}\n`], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `alacarte-wallet-${new Date().toISOString().slice(0, 10)}.txt`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---- wiring ----

function wire(): void {
  ui.duration.addEventListener('input', updateDuration);
  ui.extendSeconds.addEventListener('change', updateExtendPrice);
  ui.rentForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void busy(ui.rentButton, rent);
  });
  ui.extendForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void busy(ui.extendButton, extend);
  });
  ui.stop.addEventListener('click', () => void busy(ui.stop, stop));
  setupFiles(
    {
      path: el<HTMLInputElement>('files-path'),
      pick: el<HTMLInputElement>('files-pick'),
      upload: el<HTMLButtonElement>('files-upload'),
      download: el<HTMLButtonElement>('files-download'),
      status: el('files-status'),
    },
    heldLease,
  );
  ui.topupForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void busy(ui.topupButton, topUp);
  });
  ui.invoiceCopy.addEventListener('click', () => void copy(ui.invoiceText.value, ui.invoiceText));
  ui.receiveForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void busy(ui.receiveButton, async () => {
      const token = ui.receiveToken.value.trim();
      if (!token) throw new Sentence('Paste a Cashu token first.');
      const amount = await needWallet().receive(token);
      ui.receiveToken.value = '';
      say(`Received ${amount} ${unit()}.`);
    });
  });
  ui.backup.addEventListener('click', () => {
    try {
      backup();
    } catch (err) {
      say(messageOf(err), true);
    }
  });
  ui.backupCopy.addEventListener('click', () => void copy(ui.backupToken.value, ui.backupToken));
  ui.backupDownload.addEventListener('click', () => download(ui.backupToken.value));
}

async function start(): Promise<void> {
  wire();
  say('Loading…');
  node = await getOffers();
  renderOffers(node);
  // Said before anyone pays: with a test backend, nothing here is worth money.
  ui.testMoney.hidden = (await testBackendOf(node.mint).catch(() => undefined)) === undefined;
  wallet = await BrowserWallet.open({
    mintUrl: node.mint,
    unit: node.unit,
    storage: localStorage,
    origin: location.origin,
    onChange: showBalance,
  });
  showBalance(wallet.balance());
  await recover(wallet);
  await restoreLease();
  if (ui.status.textContent === 'Loading…') say('Ready.');
}

start().catch((err) => say(`Could not load: ${messageOf(err)}`, true));
