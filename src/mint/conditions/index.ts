/** NUT-10 spending conditions and their enforcement (NUT-11 P2PK, NUT-14 HTLC). */
export * from './nut-10.js';
export * from './nut-11.js';
export * from './nut-14.js';
export * from './spending-conditions.js';
