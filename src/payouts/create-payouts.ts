import type { Config } from '../config.js';
import type { NodeSecret } from '../leases/node-secret.js';
import type { LightningBackend } from '../lightning/lightning-backend.js';
import type { Logger } from '../log.js';
import { TrustedMints } from '../rails/cashu/trusted-mints.js';
import type { Database } from '../store/database.js';
import { OwnMintPayer } from './own-mint-payer.js';
import { PayoutService } from './payout-service.js';
import { TrustedMintPayer } from './trusted-mint-payer.js';

/** The node's payout service: the own mint's Lightning backend and one payer per trusted mint. */
export function createPayouts(
  config: Config,
  deps: {
    db: Database;
    lightning: LightningBackend;
    secret: NodeSecret;
    fetch?: typeof fetch;
    logger?: Logger;
  },
): PayoutService {
  const unit = config.mint.unit;
  const trusted = new TrustedMints({
    urls: config.trustedMints,
    db: deps.db,
    secret: deps.secret,
    unit,
    railId: 'cashu',
    fetch: deps.fetch,
    maxProofs: config.mint.maxInputs,
    logger: deps.logger,
  });
  return new PayoutService({
    db: deps.db,
    unit,
    trustedMints: config.trustedMints,
    own: new OwnMintPayer(deps.lightning, unit, deps.logger),
    trusted: trusted
      .urls()
      .map((url) => new TrustedMintPayer(url, { unit, secret: deps.secret, trusted, log: deps.logger })),
    logger: deps.logger,
  });
}
