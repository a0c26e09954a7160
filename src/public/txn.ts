/**
 * talus/txn: a transactional record store (snapshot isolation or
 * serializable, MVCC reads) whose only storage is an ObjectStorage: a
 * directory, memory, Talus or AWS S3. See docs/TXN.md.
 */
export {
  openStore,
  TxnStore,
  Transaction,
  ReaderLease,
  ConflictError,
  FencedError,
  CommitOutcomeUnknownError,
  UnsupportedStorageError,
  TooOldError,
  CorruptLogError,
  type OpenStoreOptions,
  type Isolation,
  type LoadedRevision,
  type HistoryItem,
  type TransactionRecord,
  type Snapshot,
  type PackProgress,
  type PackOptions,
  type GarbageReport,
} from '../txn/index.ts';
