import { createRequire } from 'node:module';

/**
 * libsecp256k1 through the `secp256k1` package's native binding. Loaded from `bindings.js` rather
 * than the package root on purpose: the root silently falls back to a pure-JS implementation when
 * the addon fails to load, which would make the mint ~50× slower and not constant-time. Failing
 * loudly at start is better.
 */
export type Secp256k1 = typeof import('secp256k1');

const require = createRequire(import.meta.url);

export const secp: Secp256k1 = require('secp256k1/bindings.js') as Secp256k1;
