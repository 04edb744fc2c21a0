/** The mint's cryptographic core: BDHKE (NUT-00), DLEQ (NUT-12), keysets (NUT-01/02). */
export * from './bdhke.js';
export * from './hex.js';
export * from './keysets.js';
export * from './schnorr.js';
