/** The mint's cryptographic core: BDHKE (NUT-00), DLEQ (NUT-12), keysets (NUT-01/02), BIP-340 verification. */
export * from './bdhke.js';
export * from './hex.js';
export * from './keysets.js';
export * from './schnorr.js';
