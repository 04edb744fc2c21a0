import type { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import { type Offer, offerToJson, quote as priceQuote } from '../core/offers.js';
import type { ComputeDriver, DriverCapacity, ImageDetail } from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';
import { fits, offersThatFit, without } from './capacity.js';
import { requireSellableOffers, sellableImages } from './request-checks.js';

export interface CatalogOptions {
  driver: ComputeDriver;
  /** The offers on sale; throws at construction when none can be sold (request-checks.ts). */
  offers: readonly Offer[];
  /** The images renters may ask for: names, or a function read on every request (LeaseServiceOptions). */
  images: readonly string[] | (() => readonly ImageDetail[]);
  logger: Logger;
}

/**
 * What the node sells right now: its offers and their prices, the images on sale, and the room
 * left for each offer once the starts under way have reserved theirs (before any money moves).
 */
export class Catalog {
  private readonly driver: ComputeDriver;
  private readonly offers: readonly Offer[];
  private readonly imageSource: () => readonly ImageDetail[];
  private sellable: { from: readonly ImageDetail[]; images: ImageDetail[] } | undefined;
  private readonly log: Logger;
  /** Starts under way: capacity is reserved before any money moves (for the lease id, when known). */
  private readonly reserved = new Set<{ offer: Offer; leaseId?: string }>();

  constructor(options: CatalogOptions) {
    this.driver = options.driver;
    requireSellableOffers(options.offers);
    this.offers = options.offers;
    const images = options.images;
    if (typeof images === 'function') this.imageSource = images;
    else {
      const fixed = images.map((name) => ({ name, description: '', size_mib: 0 }));
      this.imageSource = () => fixed;
    }
    this.log = options.logger;
  }

  /** GET /v1/offers `offers`: each offer as API.md shows it, with how many more fit (`available`). */
  async offerList(): Promise<Array<Record<string, unknown>>> {
    const capacity = await this.capacity();
    return this.offers.map((o) => ({ ...offerToJson(o), available: capacity.get(o.id) ?? 0 }));
  }

  /** How many more sandboxes of each offer fit right now (for metrics). */
  async capacity(): Promise<Map<string, number>> {
    return offersThatFit(this.unreserved(await this.driver.capacity()), this.offers);
  }

  /** The images on sale (GET /v1/offers `image_details`): the source's, minus names no driver takes. */
  imageDetails(): readonly ImageDetail[] {
    const from = this.imageSource();
    if (this.sellable?.from !== from) {
      const names = new Set(
        sellableImages(
          from.map((i) => i.name),
          this.log,
        ),
      );
      // Exactly API.md's fields, whatever else the source knows of an image.
      const images = from
        .filter((i) => names.has(i.name))
        .map(({ name, description, size_mib }) => ({ name, description, size_mib }));
      this.sellable = { from, images };
    }
    return this.sellable.images;
  }

  /** The names of the images on sale. */
  imageList(): readonly string[] {
    return this.imageDetails().map((i) => i.name);
  }

  /** A quote for `seconds` of an offer (API.md); throws AlacarteError `invalid_request` for an unknown offer or seconds out of bounds. */
  quote(offerId: string, seconds: number): { offer: string; seconds: number; amount: number; unit: string } {
    const q = this.price(offerId, seconds);
    return { offer: q.offer.id, seconds, amount: q.amount.toNumber(), unit: q.amount.unit };
  }

  /**
   * The offer and its price for `seconds`: an offer id among those on sale, or an offer as sold
   * (a running lease's own). Throws AlacarteError `invalid_request` as quote does.
   */
  price(offerOrId: string | Offer, seconds: number): { offer: Offer; amount: Amount } {
    const offers = typeof offerOrId === 'string' ? this.offers : [offerOrId];
    const id = typeof offerOrId === 'string' ? offerOrId : offerOrId.id;
    const q = priceQuote(offers, id, seconds);
    if (!q.ok) throw new AlacarteError(q.code, q.message);
    return { offer: q.quote.offer, amount: q.quote.amount };
  }

  /**
   * Reserves room for one sandbox of `offer` (for lease `leaseId`, when known: once the driver counts
   * that lease's sandbox, the reservation is not counted again) until the returned function is called; throws
   * AlacarteError `no_capacity` when it does not fit beside the sandboxes and reservations there.
   */
  async reserve(offer: Offer, leaseId?: string): Promise<() => void> {
    const free = this.unreserved(await this.driver.capacity());
    if (fits(free, offer) < 1) {
      const why =
        offer.network === 'egress' && free.egress === false
          ? `offer '${offer.id}' needs a network this node cannot give right now; choose another`
          : `no room for offer '${offer.id}' right now; try again shortly`;
      throw new AlacarteError('no_capacity', why);
    }
    const reservation = { offer, leaseId };
    this.reserved.add(reservation);
    return () => this.reserved.delete(reservation);
  }

  private unreserved(free: DriverCapacity): DriverCapacity {
    return without(
      free,
      // A reservation whose sandbox the driver counts already (its start under way or done, the
      // create not yet answered) is not subtracted twice.
      [...this.reserved]
        .filter((r) => r.leaseId === undefined || !free.leases?.has(r.leaseId))
        .map((r) => r.offer),
    );
  }
}
