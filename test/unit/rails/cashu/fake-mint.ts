import { Amount as CashuAmount, getEncodedToken } from '@cashu/cashu-ts';
import {
  bytesToHex,
  deriveKeyset,
  hashToCurve,
  hexToBytes,
  type Keyset,
  signBlinded,
  verifyProof,
} from '../../../../src/mint/crypto/index.js';
import type { BlindedMessage, Proof } from '../../../../src/mint/types.js';

const encoder = new TextEncoder();

/**
 * A scripted Cashu mint behind an injected `fetch`, for unit tests of the trusted-mint client: it
 * really signs, spends and restores (no NUT-19 cache, like many mints), and tests can make it fail
 * or lose answers.
 */
export class FakeMint {
  readonly url = 'http://127.0.0.1:9/mint';
  keyset: Keyset;
  private readonly retired: Keyset[] = [];
  readonly spent = new Set<string>();
  readonly signed = new Map<string, { amount: number; id: string; C_: string }>();
  readonly calls: string[] = [];
  /** Next answers to force, by path suffix (`/v1/swap`...): a status and body, or 'drop' (carry out, lose the answer), or 'hang'. */
  readonly script = new Map<string, Array<{ status: number; body: unknown } | 'drop' | 'hang' | 'down'>>();

  constructor(options: { inputFeePpk?: number } = {}) {
    this.keyset = deriveKeyset({
      seed: new Uint8Array(32).fill(3),
      unit: 'sat',
      index: 0,
      maxOrder: 20,
      inputFeePpk: options.inputFeePpk ?? 0,
    });
  }

  /** Replaces the active keyset with a new one (the old one still redeems); returns the new id. */
  rotate(): string {
    this.retired.push({ ...this.keyset, active: false });
    this.keyset = deriveKeyset({
      seed: new Uint8Array(32).fill(3),
      unit: 'sat',
      index: this.retired.length,
      maxOrder: 20,
      inputFeePpk: this.keyset.inputFeePpk,
    });
    return this.keyset.id;
  }

  /** Fresh proofs worth the given denominations, as a cashuB token of this mint. */
  token(amounts: readonly number[], tag = 'p'): { token: string; proofs: Proof[] } {
    const proofs = amounts.map((amount, i) => {
      const secret = bytesToHex(encoder.encode(`${tag}-${i}-${amount}`.padEnd(32, '.')));
      // An amount without a key (a forged proof) is signed with the key of 1.
      const key = this.keyset.keys.get(BigInt(amount)) ?? this.keyset.keys.get(1n);
      if (!key) throw new Error('no key');
      const C = bytesToHex(signBlinded(key.privateKey, hashToCurve(encoder.encode(secret))));
      return { id: this.keyset.id, amount, secret, C };
    });
    const token = getEncodedToken({
      mint: this.url,
      unit: 'sat',
      proofs: proofs.map((p) => ({ ...p, amount: CashuAmount.from(p.amount) })),
    });
    return { token, proofs };
  }

  /** Whether a proof is one this mint signed. */
  valid(p: Proof): boolean {
    const keyset = [this.keyset, ...this.retired].find((k) => k.id === p.id);
    const key = keyset?.keys.get(BigInt(p.amount));
    const C = hexToBytes(p.C);
    return !!key && !!C && verifyProof(key.privateKey, encoder.encode(p.secret), C);
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const url = String(input);
    const path = url.slice(this.url.length);
    this.calls.push(path);
    const forced = this.script.get(path)?.shift();
    if (forced === 'down') throw new TypeError('fetch failed');
    if (forced === 'hang') {
      return new Promise<Response>((_, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });
    }
    if (forced && forced !== 'drop') return json(forced.status, forced.body);
    const body = init?.body ? (JSON.parse(String(init.body)) as Record<string, unknown>) : {};
    const answer = this.handle(path, body);
    if (forced === 'drop') throw new TypeError('other side closed');
    return answer;
  };

  private handle(path: string, body: Record<string, unknown>): Response {
    const ks = this.keyset;
    const all = [...this.retired, ks];
    if (path === '/v1/keysets')
      return json(200, {
        keysets: all.map((k) => ({ id: k.id, unit: 'sat', active: k.active, input_fee_ppk: k.inputFeePpk })),
      });
    const keyset = all.find((k) => path === `/v1/keys/${k.id}`);
    if (keyset) {
      const keys = Object.fromEntries([...keyset.keys].map(([a, k]) => [String(a), bytesToHex(k.publicKey)]));
      return json(200, { keysets: [{ id: keyset.id, unit: 'sat', keys }] });
    }
    if (path === '/v1/checkstate') {
      const Ys = body.Ys as string[];
      return json(200, {
        states: Ys.map((Y) => ({ Y, state: this.spent.has(Y) ? 'SPENT' : 'UNSPENT', witness: null })),
      });
    }
    if (path === '/v1/restore') {
      const outputs = body.outputs as BlindedMessage[];
      const found = outputs.filter((o) => this.signed.has(o.B_));
      return json(200, {
        outputs: found,
        signatures: found.map((o) => this.signed.get(o.B_)),
      });
    }
    if (path === '/v1/swap') {
      const inputs = body.inputs as Proof[];
      const outputs = body.outputs as BlindedMessage[];
      if (!inputs.every((p) => this.valid(p))) return json(400, { code: 10001, detail: 'bad proof' });
      const Ys = inputs.map((p) => bytesToHex(hashToCurve(encoder.encode(p.secret))));
      if (Ys.some((y) => this.spent.has(y))) return json(400, { code: 11001, detail: 'spent' });
      if (outputs.some((o) => this.signed.has(o.B_))) return json(400, { code: 11003, detail: 'signed' });
      const fee = Math.ceil((inputs.length * ks.inputFeePpk) / 1000);
      const inSum = inputs.reduce((n, p) => n + p.amount, 0);
      const outSum = outputs.reduce((n, o) => n + o.amount, 0);
      if (inSum - fee !== outSum) return json(400, { code: 11005, detail: 'unbalanced' });
      for (const y of Ys) this.spent.add(y);
      const signatures = outputs.map((o) => {
        const key = ks.keys.get(BigInt(o.amount));
        const B_ = hexToBytes(o.B_);
        if (!key || !B_) throw new Error('bad output');
        const signature = { amount: o.amount, id: ks.id, C_: bytesToHex(signBlinded(key.privateKey, B_)) };
        this.signed.set(o.B_, signature);
        return signature;
      });
      return json(200, { signatures });
    }
    return json(404, { detail: 'no route' });
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
