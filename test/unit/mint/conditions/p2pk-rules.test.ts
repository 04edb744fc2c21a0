import { createHash, randomBytes } from 'node:crypto';
import {
  createHTLCsecret,
  createP2PKsecret,
  type Proof,
  SigAll,
  schnorrSignDigest,
  schnorrSignMessage,
  signP2PKProof,
} from '@cashu/cashu-ts';
import { describe, expect, it } from 'vitest';
import {
  type ConditionInput,
  type ConditionOutput,
  checkSpendingConditions,
  sigAllMessage,
} from '../../../../src/mint/conditions/index.js';
import { bytesToHex, publicKeyOf } from '../../../../src/mint/crypto/index.js';
import { secp } from '../../../../src/mint/crypto/native.js';

const NOW = 1_750_000_000;

function keyPair() {
  let sk: Uint8Array;
  do sk = new Uint8Array(randomBytes(32));
  while (!secp.privateKeyVerify(sk));
  return { sk: bytesToHex(sk), pk: bytesToHex(publicKeyOf(sk)) };
}
const [alice, bob, carol, dave] = [keyPair(), keyPair(), keyPair(), keyPair()];
const randomPoint = () => keyPair().pk;

const input = (secret: string): ConditionInput => ({ secret, C: randomPoint() });
const sign = (i: ConditionInput, sk: string): ConditionInput =>
  signP2PKProof({ ...i, id: '00', amount: 1 } as unknown as Proof, sk) as unknown as ConditionInput;
const withSigs = (i: ConditionInput, message: string, sks: string[]): ConditionInput => ({
  ...i,
  witness: JSON.stringify({ signatures: sks.map((sk) => schnorrSignMessage(message, sk)) }),
});
const check = (inputs: ConditionInput[], outputs: ConditionOutput[] = [], now = NOW, quoteId?: string) =>
  checkSpendingConditions({ inputs, outputs, now, quoteId });
const outputs: ConditionOutput[] = [
  { amount: 1, B_: randomPoint() },
  { amount: 2n, B_: randomPoint() },
];

describe('P2PK SIG_INPUTS with proofs signed by cashu-ts', () => {
  it('the recipient key unlocks, another key or no witness does not', () => {
    const locked = input(createP2PKsecret(alice.pk));
    expect(check([sign(locked, alice.sk)])).toEqual({ ok: true });
    const wrong = check([withSigs(locked, locked.secret, [bob.sk])]);
    expect(wrong.ok).toBe(false);
    expect(wrong.ok ? 0 : wrong.code).toBe(10001);
    expect(check([locked]).ok).toBe(false);
  });

  it('each input needs its own signature', () => {
    const a = sign(input(createP2PKsecret(alice.pk)), alice.sk);
    const b = input(createP2PKsecret(alice.pk));
    expect(check([a, sign(b, alice.sk)])).toEqual({ ok: true });
    const r = check([a, b]);
    expect(r.ok ? '' : r.detail).toMatch(/^input 1:/);
  });

  it('n_sigs counts distinct keys among data + pubkeys; the same key twice is one', () => {
    const secret = createP2PKsecret(alice.pk, [
      ['pubkeys', bob.pk, carol.pk],
      ['n_sigs', '2'],
    ]);
    expect(check([withSigs(input(secret), secret, [alice.sk, carol.sk])])).toEqual({ ok: true });
    expect(check([withSigs(input(secret), secret, [bob.sk, carol.sk])])).toEqual({ ok: true });
    expect(check([withSigs(input(secret), secret, [alice.sk, alice.sk])]).ok).toBe(false);
    expect(check([withSigs(input(secret), secret, [alice.sk, dave.sk])]).ok).toBe(false);
  });

  it('refund keys unlock only from locktime on, with n_sigs_refund; main keys keep working', () => {
    const locktime = NOW + 100;
    const secret = createP2PKsecret(alice.pk, [
      ['locktime', String(locktime)],
      ['refund', bob.pk, carol.pk],
      ['n_sigs_refund', '2'],
    ]);
    const byRefund = withSigs(input(secret), secret, [bob.sk, carol.sk]);
    expect(check([byRefund], [], locktime - 1).ok).toBe(false);
    expect(check([byRefund], [], locktime)).toEqual({ ok: true });
    expect(check([withSigs(input(secret), secret, [bob.sk])], [], locktime + 1).ok).toBe(false);
    expect(check([withSigs(input(secret), secret, [alice.sk])], [], locktime + 1)).toEqual({ ok: true });
  });

  it('an expired lock without refund keys is spendable by anyone; an invalid locktime never expires', () => {
    const expired = createP2PKsecret(alice.pk, [['locktime', String(NOW - 1)]]);
    expect(check([input(expired)])).toEqual({ ok: true });
    const active = createP2PKsecret(alice.pk, [['locktime', String(NOW + 1)]]);
    expect(check([input(active)]).ok).toBe(false);
    const permanent = `["P2PK",{"nonce":"00","data":"${alice.pk}","tags":[["locktime","soon"],["refund","${bob.pk}"]]}]`;
    expect(check([withSigs(input(permanent), permanent, [bob.sk])], [], Number.MAX_SAFE_INTEGER).ok).toBe(
      false,
    );
    expect(check([withSigs(input(permanent), permanent, [alice.sk])])).toEqual({ ok: true });
  });
});

describe('P2PK SIG_ALL', () => {
  const tags = [['sigflag', 'SIG_ALL']];
  const secret = () => createP2PKsecret(alice.pk, tags);

  it('our message digest equals cashu-ts SigAll.computeDigests for swaps and melts', () => {
    const inputs = [input(secret()), input(secret())];
    const outs = outputs.map((o) => ({ ...o, id: '00' }));
    type Outs = Parameters<typeof SigAll.computeDigests>[1];
    for (const quote of [undefined, 'quote-123']) {
      const digest = SigAll.computeDigests(inputs, outs as unknown as Outs, quote).v0;
      expect(
        createHash('sha256')
          .update(sigAllMessage(inputs, outputs, quote))
          .digest('hex'),
      ).toBe(digest);
    }
  });

  it('one signature in the first input covers all inputs and outputs', () => {
    const inputs = [input(secret()), input(secret())];
    const digest = createHash('sha256').update(sigAllMessage(inputs, outputs)).digest('hex');
    const first = {
      ...inputs[0],
      witness: JSON.stringify({ signatures: [schnorrSignDigest(digest, alice.sk)] }),
    };
    const signed = [first as ConditionInput, inputs[1] as ConditionInput];
    expect(check(signed, outputs)).toEqual({ ok: true });
    expect(check(signed, outputs.slice(0, 1)).ok).toBe(false);
    expect(check(signed, outputs, NOW, 'a-melt-quote').ok).toBe(false);
    expect(check([signed[0] as ConditionInput], outputs).ok).toBe(false);
  });

  it('refuses a transaction mixing SIG_ALL with other locks or with plain secrets', () => {
    const lock = input(secret());
    const other = input(createP2PKsecret(bob.pk, tags));
    expect(check([lock, other]).ok).toBe(false);
    expect(check([lock, input(bytesToHex(randomBytes(32)))]).ok).toBe(false);
    expect(check([input(bytesToHex(randomBytes(32))), lock]).ok).toBe(false);
    expect(check([lock, input(createP2PKsecret(alice.pk))]).ok).toBe(false);
  });
});

describe('HTLC', () => {
  const preimage = bytesToHex(randomBytes(32));
  const hash = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex');

  it('the preimage alone unlocks when there are no pubkeys; a wrong one does not', () => {
    const secret = createHTLCsecret(hash);
    expect(check([{ ...input(secret), witness: JSON.stringify({ preimage }) }])).toEqual({ ok: true });
    const wrong = bytesToHex(randomBytes(32));
    expect(check([{ ...input(secret), witness: JSON.stringify({ preimage: wrong }) }]).ok).toBe(false);
    expect(check([input(secret)]).ok).toBe(false);
  });

  it('with pubkeys, preimage and signature are both needed; refund after locktime needs no preimage', () => {
    const secret = createHTLCsecret(hash, [
      ['pubkeys', alice.pk],
      ['locktime', String(NOW)],
      ['refund', bob.pk],
    ]);
    const sig = (sk: string) => schnorrSignMessage(secret, sk);
    const w = (o: object) => ({ ...input(secret), witness: JSON.stringify(o) });
    expect(check([w({ preimage, signatures: [sig(alice.sk)] })], [], NOW - 1)).toEqual({ ok: true });
    expect(check([w({ signatures: [sig(alice.sk)] })], [], NOW - 1).ok).toBe(false);
    expect(check([w({ preimage })], [], NOW - 1).ok).toBe(false);
    expect(check([w({ signatures: [sig(bob.sk)] })], [], NOW - 1).ok).toBe(false);
    expect(check([w({ signatures: [sig(bob.sk)] })], [], NOW)).toEqual({ ok: true });
  });
});

describe('malformed secrets and witnesses are refused (10001), never treated as unlocked', () => {
  const p2pk = (data: string, tags: unknown) =>
    JSON.stringify(['P2PK', { nonce: '5d11913ee0f92fefdc82a6764fd2457a', data, tags }]);
  const same = alice.pk;
  const sameOtherParity = (same.startsWith('02') ? '03' : '02') + same.slice(2);
  const uncompressed = bytesToHex(secp.publicKeyConvert(Buffer.from(bob.pk, 'hex'), false));
  const cases: [string, string][] = [
    [
      'duplicate sigflag tag',
      p2pk(alice.pk, [
        ['sigflag', 'SIG_INPUTS'],
        ['sigflag', 'SIG_INPUTS'],
      ]),
    ],
    ['unknown sigflag', p2pk(alice.pk, [['sigflag', 'SIG_SOME']])],
    ['sigflag without value', p2pk(alice.pk, [['sigflag']])],
    ['n_sigs zero', p2pk(alice.pk, [['n_sigs', '0']])],
    [
      'n_sigs above key count',
      p2pk(alice.pk, [
        ['pubkeys', bob.pk],
        ['n_sigs', '3'],
      ]),
    ],
    ['n_sigs not an integer', p2pk(alice.pk, [['n_sigs', '1.5']])],
    ['n_sigs_refund without refund keys', p2pk(alice.pk, [['n_sigs_refund', '1']])],
    ['duplicate key by x coordinate', p2pk(same, [['pubkeys', sameOtherParity]])],
    ['duplicate key in other case', p2pk(same, [['pubkeys', same.toUpperCase()]])],
    ['duplicate refund key', p2pk(alice.pk, [['refund', bob.pk, bob.pk]])],
    ['uncompressed pubkey', p2pk(alice.pk, [['pubkeys', uncompressed]])],
    ['data not a point', p2pk('02'.padEnd(66, 'f'), [])],
    ['empty tag', p2pk(alice.pk, [[]])],
    ['numeric tag value', p2pk(alice.pk, [['locktime', 1765300829]])],
    ['empty tag value', p2pk(alice.pk, [['locktime', '']])],
    ['tags not an array', p2pk(alice.pk, { sigflag: 'SIG_ALL' })],
    ['missing nonce', JSON.stringify(['P2PK', { data: alice.pk }])],
    ['three elements', JSON.stringify(['P2PK', { nonce: 'n', data: alice.pk }, 'extra'])],
    ['HTLC hash not hex', JSON.stringify(['HTLC', { nonce: 'n', data: 'zz'.repeat(32) }])],
  ];

  it.each(cases)('%s', (_name, secret) => {
    // Even with the recipient's valid signature on the secret, a malformed lock is refused.
    const r = check([withSigs(input(secret), secret, [alice.sk])]);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.detail).toMatch(/malformed/);
  });

  it('bad witnesses', () => {
    const secret = createP2PKsecret(alice.pk);
    for (const witness of [
      'not json',
      '[]',
      '{"signatures":"ab"}',
      '{"signatures":["zz"]}',
      '{"preimage":"00"}',
    ]) {
      const r = check([{ ...input(secret), witness }]);
      expect(r.ok ? '' : r.detail, witness).toMatch(/invalid witness/);
    }
  });

  it('plain secrets and well-formed unknown kinds carry no conditions', () => {
    expect(check([input(bytesToHex(randomBytes(32)))])).toEqual({ ok: true });
    expect(check([input('[not json')])).toEqual({ ok: true });
    expect(check([input(JSON.stringify(['FUTURE', { nonce: 'n', data: 'x' }]))])).toEqual({ ok: true });
  });

  it('a witness of bad signatures against many keys runs out of the signature budget', () => {
    const keys = Array.from({ length: 40 }, () => keyPair().pk);
    const secret = createP2PKsecret(keys[0] as string, [['pubkeys', ...keys.slice(1)]]);
    const junk = Array.from({ length: 40 }, () => schnorrSignMessage('something else', dave.sk));
    const r = check([{ ...input(secret), witness: JSON.stringify({ signatures: junk }) }]);
    expect(r.ok ? '' : r.detail).toMatch(/too many signature checks/);
  });
});
