/** NUT-14 HTLC hash lock: SHA256(preimage) must equal the 32-byte hash in Secret.data. */
import { createHash, timingSafeEqual } from 'node:crypto';

export function verifyHashLock(hashLock: Uint8Array | undefined, preimage: Uint8Array | undefined): boolean {
  if (hashLock === undefined || preimage === undefined || hashLock.length !== 32 || preimage.length !== 32) {
    return false;
  }
  return timingSafeEqual(createHash('sha256').update(preimage).digest(), hashLock);
}
