export { Amount } from '../core/amount.js';
export { defaultHome, LocalWallet, type LocalWalletOptions } from '../wallet/local-wallet.js';
export { LeaseTerminal } from './attach.js';
export { Alacarte, type AlacarteOptions, type CollectedRefund, type FetchLike } from './client.js';
export { formatDuration, parseDuration } from './duration.js';
export {
  AlacarteApiError,
  AlacarteNetworkError,
  InsufficientFundsError,
  PriceLimitError,
  UnknownLeaseError,
  WalletOperationError,
} from './errors.js';
export { type FileData, type FileDownload, LeaseFilesClient, type WriteFileOptions } from './files.js';
export { LeaseBook, type LeaseBookEntry } from './lease-book.js';
export {
  ShellNotReadyError,
  type ShellReadiness,
  type ShellReadyOptions,
  untilShellReads,
} from './shell-ready.js';
export type * from './types.js';
