import { randomBytes } from 'node:crypto';
import type { Nip47Transaction, NWCWalletService, NWCWalletServiceRequestHandler } from '@getalby/sdk';
import secp256k1 from 'secp256k1';
import { decodeBolt11 } from '../../../../src/lightning/bolt11.js';
import { loadNwcSdk } from '../../../../src/lightning/nwc/nwc-backend.js';
import { NostrRelay } from './nostr-relay.js';
import { type SimInvoice, type SimPayment, SimulatedNode } from './simulated-node.js';

/** x-only (BIP-340) public key of a hex secret key, as Nostr names keys. */
function nostrPubkey(secretHex: string): string {
  return Buffer.from(secp256k1.publicKeyCreate(Buffer.from(secretHex, 'hex'), true).slice(1)).toString('hex');
}

/**
 * A NIP-47 wallet for tests: @getalby/sdk's own NWCWalletService, on a NIP-01 relay in the test
 * process, answering from a SimulatedNode, and publishing `payment_received` notifications
 * (NIP-44 encrypted, kind 23197) when one of its invoices settles.
 */
export class NwcTestWallet {
  readonly node = new SimulatedNode();
  readonly relay = new NostrRelay();
  /** The connection string a client uses (contains the client's secret). */
  url = '';
  private service: NWCWalletService | undefined;
  private readonly stops: Array<() => void> = [];

  async start(): Promise<void> {
    const sdk = await loadNwcSdk();
    const relayUrl = await this.relay.start();
    const walletSecret = randomBytes(32).toString('hex');
    const clientSecret = randomBytes(32).toString('hex');
    const clientPubkey = nostrPubkey(clientSecret);
    this.url = `nostr+walletconnect://${nostrPubkey(walletSecret)}?relay=${encodeURIComponent(relayUrl)}&secret=${clientSecret}`;
    const service = new sdk.NWCWalletService({ relayUrl });
    this.service = service;
    await service.publishWalletServiceInfoEvent(
      walletSecret,
      ['make_invoice', 'pay_invoice', 'lookup_invoice', 'list_transactions'],
      ['payment_received'],
    );
    const keypair = new sdk.NWCWalletServiceKeyPair(walletSecret, clientPubkey);
    this.stops.push(await service.subscribe(keypair, this.handler()));
    this.stops.push(
      this.node.watchInvoices((invoice) => {
        if (invoice.state !== 'SETTLED') return;
        void (async () => {
          const content = await service.encrypt(
            keypair,
            JSON.stringify({ notification_type: 'payment_received', notification: incoming(invoice) }),
            'nip44_v2',
          );
          const event = await service.signEvent(
            { kind: 23197, created_at: Math.floor(Date.now() / 1000), tags: [['p', clientPubkey]], content },
            walletSecret,
          );
          await service.relay.publish(event);
        })();
      }),
    );
  }

  async stop(): Promise<void> {
    for (const stop of this.stops) stop();
    this.service?.close();
    await this.relay.stop();
  }

  private handler(): NWCWalletServiceRequestHandler {
    const node = this.node;
    const error = (code: string, message: string) => ({ result: undefined, error: { code, message } });
    return {
      makeInvoice: async (request) => {
        const invoice = node.createInvoice(
          BigInt(request.amount),
          request.description ?? '',
          request.expiry ?? 86_400,
        );
        return { result: incoming(invoice), error: undefined };
      },
      payInvoice: async (request) => {
        const hash = decodeBolt11(request.invoice)?.paymentHash ?? '';
        const started = node.startPayment(request.invoice, 1_000_000_000n);
        if (started === 'invalid') return error('OTHER', 'invalid invoice');
        const payment = started === 'already' ? node.payments.get(hash) : started;
        if (!payment) return error('INTERNAL', 'lost payment');
        const ended =
          payment.status !== 'IN_FLIGHT'
            ? payment
            : await new Promise<SimPayment>((resolve) => {
                const stop = node.watchPayments((p) => {
                  if (p.paymentHash === hash) {
                    stop();
                    resolve(p);
                  }
                });
              });
        if (ended.status !== 'SUCCEEDED') return error('PAYMENT_FAILED', 'payment failed');
        return { result: { preimage: ended.preimage, fees_paid: Number(ended.feeMsat) }, error: undefined };
      },
      lookupInvoice: async (request) => {
        const hash = request.payment_hash ?? decodeBolt11(request.invoice)?.paymentHash ?? '';
        const invoice = node.invoices.get(hash);
        if (invoice) return { result: incoming(invoice), error: undefined };
        const payment = node.payments.get(hash);
        if (payment) return { result: outgoing(payment), error: undefined };
        return error('NOT_FOUND', 'invoice not found');
      },
      listTransactions: async (request) => {
        const transactions = [...node.invoices.values()]
          .filter((i) => i.state === 'SETTLED' && i.settledAt >= (request.from ?? 0))
          .map(incoming);
        return { result: { transactions, total_count: transactions.length }, error: undefined };
      },
    };
  }
}

function incoming(i: SimInvoice): Nip47Transaction {
  return {
    type: 'incoming',
    state: i.state === 'SETTLED' ? 'settled' : i.state === 'CANCELED' ? 'failed' : 'pending',
    invoice: i.bolt11,
    description: i.memo,
    description_hash: '',
    preimage: i.state === 'SETTLED' ? i.preimage : '',
    payment_hash: i.paymentHash,
    amount: Number(i.amountMsat),
    fees_paid: 0,
    settled_at: i.settledAt,
    created_at: i.createdAt,
    expires_at: i.createdAt + i.expirySeconds,
  };
}

function outgoing(p: SimPayment): Nip47Transaction {
  return {
    type: 'outgoing',
    state: p.status === 'SUCCEEDED' ? 'settled' : p.status === 'FAILED' ? 'failed' : 'pending',
    invoice: p.bolt11,
    description: '',
    description_hash: '',
    preimage: p.preimage,
    payment_hash: p.paymentHash,
    amount: Number(p.amountMsat),
    fees_paid: Number(p.feeMsat),
    settled_at: p.status === 'SUCCEEDED' ? Math.floor(Date.now() / 1000) : 0,
    created_at: p.createdAt,
    expires_at: 0,
  };
}
