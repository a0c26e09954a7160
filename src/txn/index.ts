export { openStore, TxnStore, type OpenStoreOptions, type LoadedRevision, type HistoryItem, type TransactionRecord, type Snapshot, type PackProgress, type PackOptions, type GarbageReport } from './store.ts';
export { Transaction, type Isolation } from './transaction.ts';
export { ConflictError, FencedError, CommitOutcomeUnknownError, UnsupportedStorageError, TooOldError, CorruptLogError } from './errors.ts';
export { ReaderLease } from './lease.ts';
