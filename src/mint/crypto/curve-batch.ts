/**
 * The per-proof curve work of swaps, as it crosses to a curve worker (curve-worker.ts) and back:
 * bytes in one transferable buffer, never JSON of objects. The main thread encodes a batch (the
 * jobs of one or several swaps), the worker runs it (runBatch, the same BDHKE/DLEQ functions the
 * event loop uses otherwise), the main thread decodes the reply.
 *
 * Request: u32 job count, then per job
 *   u32 inputs, u32 outputs, u32 issues,
 *   per input:  u32 key index, u8 1 if C follows as 33 bytes (0: C was not hex of 33 bytes, the
 *               input fails), 33 bytes C, u16 secret length, the secret's UTF-8 bytes;
 *   per output: u32 key index, 65 bytes B_ (uncompressed, already checked on the curve);
 *   per issue:  u32 key index, u16 secret length, the secret's UTF-8 bytes.
 * Reply, per job: u8 status (0 ok, 1 an input failed verification, 2 an unexpected error),
 *   u32 index of the failed input, then 33 bytes Y per input, then per output 33 bytes C_,
 *   32 bytes e, 32 bytes s, then per issue 33 bytes Y and 33 bytes C (zeros unless ok).
 *
 * Keys never travel with a batch: a worker gets the private keys once (their index is their place
 * in the table) and derives their public keys itself.
 */
import { hashToCurve, signBlinded, signBlindedWithDleq, verifyProofY } from './bdhke.js';
import { secp } from './native.js';

/** One input of a job: the keyset key's index in the pool's table, the proof's secret and C. */
export interface CurveInput {
  key: number;
  secret: string;
  /** hex of the compressed point, as the wallet sent it */
  C: unknown;
}

/** One output of a job: the key's index and B_ uncompressed (65 bytes, on the curve). */
export interface CurveOutput {
  key: number;
  point: Uint8Array;
}

/**
 * One proof the node issues to itself (change, refunds: node-payments.ts), unblinded: the key's
 * index and the secret; the work is Y = hash_to_curve(secret) and C = k·Y, no DLEQ (the node is
 * its own wallet and has nothing to prove to itself).
 */
export interface CurveIssue {
  key: number;
  secret: string;
}

/**
 * One swap's curve work: verify every input (Y = hash_to_curve(secret), C == k·Y), then sign every
 * output, then every issue.
 */
export interface CurveJob {
  inputs: readonly CurveInput[];
  outputs: readonly CurveOutput[];
  issues?: readonly CurveIssue[];
}

/** What a job's work found. Outputs and issues are signed only when every input verified. */
export type CurveOutcome =
  | {
      ok: true;
      Ys: Uint8Array[];
      signatures: Array<{ C_: Uint8Array; e: Uint8Array; s: Uint8Array }>;
      /** per issue, in order: Y = hash_to_curve(secret) and C = k·Y, compressed */
      issued: Array<{ Y: Uint8Array; C: Uint8Array }>;
    }
  | { ok: false; failedInput: number }
  | { ok: false; error: string };

const STATUS_OK = 0;
const STATUS_FAILED_INPUT = 1;
const STATUS_ERROR = 2;
const REPLY_JOB_HEADER = 5;
const REPLY_PER_INPUT = 33;
const REPLY_PER_OUTPUT = 33 + 32 + 32;
const REPLY_PER_ISSUE = 33 + 33;
const HEX_66 = /^[0-9a-fA-F]{66}$/;

/** The proofs (inputs + outputs + issues) a job carries: the unit of the pool's bounds. */
export function jobSize(job: CurveJob): number {
  return job.inputs.length + job.outputs.length + (job.issues?.length ?? 0);
}

function replySpan(inputs: number, outputs: number, issues: number): number {
  return REPLY_JOB_HEADER + inputs * REPLY_PER_INPUT + outputs * REPLY_PER_OUTPUT + issues * REPLY_PER_ISSUE;
}

/** Encodes jobs into one fresh ArrayBuffer (its own, so it can be transferred). */
export function encodeBatch(jobs: readonly CurveJob[]): ArrayBuffer {
  let bound = 4;
  for (const job of jobs) {
    bound += 12 + job.outputs.length * 69;
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    for (const input of job.inputs) bound += 40 + input.secret.length * 3;
    for (const issue of job.issues ?? []) bound += 6 + issue.secret.length * 3;
  }
  const buffer = new ArrayBuffer(bound);
  const bytes = Buffer.from(buffer);
  let at = bytes.writeUInt32LE(jobs.length, 0);
  for (const job of jobs) {
    at = bytes.writeUInt32LE(job.inputs.length, at);
    at = bytes.writeUInt32LE(job.outputs.length, at);
    at = bytes.writeUInt32LE(job.issues?.length ?? 0, at);
    for (const input of job.inputs) {
      at = bytes.writeUInt32LE(input.key, at);
      const C = input.C;
      if (typeof C === 'string' && HEX_66.test(C)) {
        bytes[at] = 1;
        bytes.write(C, at + 1, 33, 'hex');
      } else {
        bytes[at] = 0;
      }
      at += 34;
      const length = bytes.write(input.secret, at + 2, 'utf8');
      bytes.writeUInt16LE(length, at);
      at += 2 + length;
    }
    for (const output of job.outputs) {
      at = bytes.writeUInt32LE(output.key, at);
      bytes.set(output.point, at);
      at += 65;
    }
    for (const issue of job.issues ?? []) {
      at = bytes.writeUInt32LE(issue.key, at);
      const length = bytes.write(issue.secret, at + 2, 'utf8');
      bytes.writeUInt16LE(length, at);
      at += 2 + length;
    }
  }
  return buffer;
}

/** Keys as the worker holds them: the private key and its public key uncompressed (NUT-12's A). */
export interface WorkerKey {
  privateKey: Uint8Array;
  publicKeyFull: Uint8Array;
}

/** A flat run of 32-byte private keys (as a worker receives them) as WorkerKeys. */
export function workerKeys(flat: Uint8Array): WorkerKey[] {
  const keys: WorkerKey[] = [];
  for (let at = 0; at + 32 <= flat.length; at += 32) {
    const privateKey = flat.slice(at, at + 32);
    keys.push({ privateKey, publicKeyFull: secp.publicKeyCreate(privateKey, false) });
  }
  return keys;
}

/**
 * The worker's side: runs every job of an encoded batch and returns the encoded reply. Per job,
 * inputs first; the first input that fails stops that job (its outputs are not signed), as the
 * in-thread verifyInputs does. A job that throws (no hash_to_curve point in 2^16 tries, an unknown
 * key index) is reported as an error of that job alone.
 */
export function runBatch(keys: readonly WorkerKey[], request: ArrayBuffer): ArrayBuffer {
  const bytes = Buffer.from(request);
  const jobs = bytes.readUInt32LE(0);
  // First pass: the reply's size.
  const shapes: Array<[number, number, number, number]> = [];
  let at = 4;
  let size = 0;
  for (let j = 0; j < jobs; j++) {
    const inputs = bytes.readUInt32LE(at);
    const outputs = bytes.readUInt32LE(at + 4);
    const issues = bytes.readUInt32LE(at + 8);
    shapes.push([at, inputs, outputs, issues]);
    at += 12;
    for (let i = 0; i < inputs; i++) at += 38 + 2 + bytes.readUInt16LE(at + 38);
    at += outputs * 69;
    for (let i = 0; i < issues; i++) at += 4 + 2 + bytes.readUInt16LE(at + 4);
    size += replySpan(inputs, outputs, issues);
  }
  const replyBuffer = new ArrayBuffer(size);
  const reply = Buffer.from(replyBuffer);
  let out = 0;
  for (const [start, inputs, outputs, issues] of shapes) {
    const jobSpan = replySpan(inputs, outputs, issues);
    try {
      const failed = runJob(
        keys,
        bytes,
        start + 12,
        [inputs, outputs, issues],
        reply,
        out + REPLY_JOB_HEADER,
      );
      if (failed < 0) {
        reply[out] = STATUS_OK;
      } else {
        reply[out] = STATUS_FAILED_INPUT;
        reply.writeUInt32LE(failed, out + 1);
      }
    } catch {
      reply[out] = STATUS_ERROR;
    }
    out += jobSpan;
  }
  return replyBuffer;
}

/** One job; writes Ys and signatures at `out`. Returns the index of the first failed input, or -1. */
function runJob(
  keys: readonly WorkerKey[],
  bytes: Buffer,
  at: number,
  [inputs, outputs, issues]: [number, number, number],
  reply: Buffer,
  out: number,
): number {
  for (let i = 0; i < inputs; i++) {
    const key = keyAt(keys, bytes.readUInt32LE(at));
    const hasC = bytes[at + 4] === 1;
    const C = bytes.subarray(at + 5, at + 38);
    const length = bytes.readUInt16LE(at + 38);
    const secret = bytes.subarray(at + 40, at + 40 + length);
    at += 40 + length;
    const Y = hashToCurve(secret);
    // C is compared byte for byte with k·Y, compressed: only a valid point can equal it.
    if (!hasC || !verifyProofY(key.privateKey, Y, C)) return i;
    reply.set(Y, out + i * REPLY_PER_INPUT);
  }
  let sig = out + inputs * REPLY_PER_INPUT;
  for (let o = 0; o < outputs; o++) {
    const key = keyAt(keys, bytes.readUInt32LE(at));
    const point = bytes.subarray(at + 4, at + 69);
    at += 69;
    const { C_, dleq } = signBlindedWithDleq(key.privateKey, point, key.publicKeyFull);
    reply.set(C_, sig);
    reply.set(dleq.e, sig + 33);
    reply.set(dleq.s, sig + 65);
    sig += REPLY_PER_OUTPUT;
  }
  for (let n = 0; n < issues; n++) {
    const key = keyAt(keys, bytes.readUInt32LE(at));
    const length = bytes.readUInt16LE(at + 4);
    const Y = hashToCurve(bytes.subarray(at + 6, at + 6 + length));
    at += 6 + length;
    reply.set(Y, sig);
    reply.set(signBlinded(key.privateKey, Y), sig + 33);
    sig += REPLY_PER_ISSUE;
  }
  return -1;
}

function keyAt(keys: readonly WorkerKey[], index: number): WorkerKey {
  const key = keys[index];
  if (key === undefined) throw new Error(`curve worker: no key ${index}`);
  return key;
}

/** Decodes a reply to the batch of `jobs` (same order). */
export function decodeReply(jobs: readonly CurveJob[], replyBuffer: ArrayBuffer): CurveOutcome[] {
  const reply = new Uint8Array(replyBuffer);
  const view = Buffer.from(replyBuffer);
  const outcomes: CurveOutcome[] = [];
  let at = 0;
  for (const job of jobs) {
    const inputs = job.inputs.length;
    const outputs = job.outputs.length;
    const issues = job.issues?.length ?? 0;
    const status = reply[at];
    if (status === STATUS_OK) {
      const Ys: Uint8Array[] = new Array(inputs);
      let p = at + REPLY_JOB_HEADER;
      for (let i = 0; i < inputs; i++, p += REPLY_PER_INPUT) Ys[i] = reply.subarray(p, p + 33);
      const signatures: Array<{ C_: Uint8Array; e: Uint8Array; s: Uint8Array }> = new Array(outputs);
      for (let o = 0; o < outputs; o++, p += REPLY_PER_OUTPUT) {
        signatures[o] = {
          C_: reply.subarray(p, p + 33),
          e: reply.subarray(p + 33, p + 65),
          s: reply.subarray(p + 65, p + 97),
        };
      }
      const issued: Array<{ Y: Uint8Array; C: Uint8Array }> = new Array(issues);
      for (let n = 0; n < issues; n++, p += REPLY_PER_ISSUE) {
        issued[n] = { Y: reply.subarray(p, p + 33), C: reply.subarray(p + 33, p + 66) };
      }
      outcomes.push({ ok: true, Ys, signatures, issued });
    } else if (status === STATUS_FAILED_INPUT) {
      outcomes.push({ ok: false, failedInput: view.readUInt32LE(at + 1) });
    } else {
      outcomes.push({ ok: false, error: 'the curve worker could not run this swap' });
    }
    at += replySpan(inputs, outputs, issues);
  }
  return outcomes;
}
