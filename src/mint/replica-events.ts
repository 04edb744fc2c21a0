import { z } from 'zod';
import type { ReplicaNotices } from '../store/replica-notices.js';
import type { MintEvent, MintEvents } from './events.js';
import type { MintLogger } from './mint-core.js';
import type { CheckStateResponse } from './types.js';

/** What the bridge needs of the mint (Mint fits). */
export interface ReplicaMint {
  readonly events: MintEvents;
  checkState(Ys: readonly string[]): Promise<CheckStateResponse>;
  reloadKeysets(): Promise<void>;
}

/** Ys per notice: 66 hex digits each, so a notice stays far below PostgreSQL's 8000 bytes. */
const YS_PER_NOTICE = 80;

const POINT = /^0[23][0-9a-f]{64}$/;
const QUOTE = /^[0-9a-f-]{36}$/;
/** One notice on `alacarte_mint`: a mint or melt quote id, proofs' Ys, or "the keysets changed". */
const noticeSchema = z.union([
  z.object({ q: z.string().regex(QUOTE) }),
  z.object({ m: z.string().regex(QUOTE) }),
  z.object({ p: z.array(z.string().regex(POINT)).min(1).max(YS_PER_NOTICE) }),
  z.object({ k: z.literal(1) }),
]);
type Notice = z.infer<typeof noticeSchema>;

/**
 * NUT-17 across replicas: the mint's committed changes (MintEvents) are told to the other replicas
 * sharing the store, and theirs are told here, so a wallet subscribed on one replica hears of a
 * quote paid or a proof spent through another. A notice names what changed, never its state: the
 * receiving replica reads the store (quotes when a subscription asks, proof states here), so it
 * never shows a state older than the store's. A keyset rotated on one replica is loaded by the
 * others at once (they also re-read keysets every few seconds on their own: mint.ts).
 *
 * Returns `rotated` (tell the others of a rotation done here) and `close`.
 */
export function shareMintEvents(
  mint: ReplicaMint,
  notices: ReplicaNotices,
  log: MintLogger,
): { rotated: () => void; close: () => void } {
  if (!notices.shared) return { rotated: () => {}, close: () => {} };
  // Events this bridge emitted for other replicas' changes: not told back to them.
  const fromOthers = new WeakSet<MintEvent>();
  const publish = (notice: Notice) =>
    void notices
      .publish('alacarte_mint', JSON.stringify(notice))
      .catch((err: unknown) => log.warn({ err: String(err) }, 'mint change not told to the other replicas'));
  const stopLocal = mint.events.listen((event) => {
    if (fromOthers.has(event)) return;
    if (event.kind === 'mint_quote') publish({ q: event.id });
    else if (event.kind === 'melt_quote') publish({ m: event.id });
    else {
      const Ys = event.states.map((s) => s.Y);
      for (let i = 0; i < Ys.length; i += YS_PER_NOTICE) publish({ p: Ys.slice(i, i + YS_PER_NOTICE) });
    }
  });
  const emit = (event: MintEvent) => {
    fromOthers.add(event);
    mint.events.emit(event);
  };
  const onNotice = async (payload: string) => {
    let notice: Notice;
    try {
      notice = noticeSchema.parse(JSON.parse(payload));
    } catch {
      log.warn({}, 'a malformed mint notice from another replica was dropped');
      return;
    }
    if ('q' in notice) emit({ kind: 'mint_quote', id: notice.q });
    else if ('m' in notice) emit({ kind: 'melt_quote', id: notice.m });
    else if ('p' in notice) emit({ kind: 'proof_state', states: (await mint.checkState(notice.p)).states });
    else await mint.reloadKeysets();
  };
  const stopRemote = notices.listen('alacarte_mint', (payload) => {
    onNotice(payload).catch((err: unknown) =>
      log.warn({ err: String(err) }, 'a mint notice from another replica failed'),
    );
  });
  return {
    rotated: () => publish({ k: 1 }),
    close: () => {
      stopLocal();
      stopRemote();
    },
  };
}
