export { type Config, loadConfig } from './config.js';
export { Amount } from './core/amount.js';
export { AlacarteError, type ErrorCode } from './core/errors.js';
export { AlacarteNode } from './node.js';
export * from './sdk/index.js';
