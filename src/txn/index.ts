export { openStore, TxnStore, type OpenStoreOptions, type LoadedRevision, type HistoryItem, type TransactionRecord, type Snapshot, type PackProgress } from './store.ts';
export { Transaction, type Isolation } from './transaction.ts';
export { ConflictError, CommitOutcomeUnknownError, UnsupportedStorageError, TooOldError, CorruptLogError } from './errors.ts';
