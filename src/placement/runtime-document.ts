/**
 * Where the admin API's run-time changes are kept — backends, placements and
 * buckets' placements, one document — and how a change replaces it without
 * losing another's.
 *
 * - A node with its own SQLite store keeps them in two files of its data
 *   directory (runtime-placements.json, bucket-placements.json), as before:
 *   one process writes them (the primary, one change at a time), so there is
 *   nothing to compare, and an operator's existing files and backups stay
 *   what they were.
 * - Nodes sharing a PostgreSQL store keep them in one row of its `settings`
 *   table (RUNTIME_DOCUMENT_SETTING), with a version number. A change reads
 *   the row, and writes the next version only while the row is still what it
 *   read (MetadataStore.putSettingIf, compare-and-set): of two nodes changing
 *   at once one wins, the other gets StaleDocumentError, catches up with the
 *   winner's document and decides again (runtime-sync.ts). Files an earlier
 *   single node left in the data directory are imported once, at the first
 *   start on a store that has no document yet (then renamed *.imported), so
 *   `talus migrate` followed by a --meta start keeps them.
 *
 * Either way an S3 backend's secret is sealed under the server's secret key
 * (runtime-placements.ts, sealBackends): neither a copy of the database nor
 * one of the data directory holds it in clear.
 */
import { open as openFile, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfigError, type BackendConfig, type PlacementConfig } from '../config/config.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { SecretBox } from '../principals/secret-box.ts';
import type { Logger } from '../util/logger.ts';
import { BUCKET_PLACEMENTS_FILE, readBucketPlacements, writeBucketPlacements } from './bucket-placements.ts';
import { type KeptBackend, type RuntimeSources, RUNTIME_PLACEMENTS_FILE, openBackends, readRuntimePlacements, sealBackends, writeRuntimePlacements } from './runtime-placements.ts';

/** The `settings` row of nodes sharing a PostgreSQL store. */
export const RUNTIME_DOCUMENT_SETTING = 'runtime-placements';
/** Renamed so, once imported into the shared store. */
export const IMPORTED_SUFFIX = '.imported';

export interface RuntimeDocument {
  backends: BackendConfig[];
  /** Striped and hybrid placements (a hybrid names striped ones, or local). */
  placements: PlacementConfig[];
  /** Buckets' placements chosen at run time, over talus.toml's [buckets]. */
  buckets: Map<string, string>;
}

/** A document as read, with what a write must find to replace it. */
export interface KeptDocument {
  readonly document: RuntimeDocument;
  /** 0 before the first change; one more with each. Always 0 in files (one writer). */
  readonly version: number;
  /** The row's text as read (undefined: no row); what the compare-and-set compares. */
  readonly stamp: string | undefined;
}

/** Another node replaced the document since it was read: nothing was written. */
export class StaleDocumentError extends Error {
  override name = 'StaleDocumentError';
}

export interface RuntimeDocumentStore {
  /** True when other nodes keep the same document (and a poll must follow their changes). */
  readonly shared: boolean;
  readonly sources: RuntimeSources;
  read(): Promise<KeptDocument>;
  /** Replaces the document `basedOn` read; StaleDocumentError, writing nothing, when it is no longer the kept one. */
  write(next: RuntimeDocument, basedOn: KeptDocument): Promise<KeptDocument>;
}

export function emptyDocument(): RuntimeDocument {
  return { backends: [], placements: [], buckets: new Map() };
}

/** A single node's data directory files. */
export class FileRuntimeDocuments implements RuntimeDocumentStore {
  readonly shared = false;
  readonly sources: RuntimeSources;
  readonly #dataDir: string;
  readonly #box: SecretBox;

  constructor(dataDir: string, box: SecretBox) {
    this.#dataDir = dataDir;
    this.#box = box;
    this.sources = { backends: join(dataDir, RUNTIME_PLACEMENTS_FILE), buckets: join(dataDir, BUCKET_PLACEMENTS_FILE) };
  }

  async read(): Promise<KeptDocument> {
    const { backends, placements } = await readRuntimePlacements(this.#dataDir, this.#box);
    return { document: { backends, placements, buckets: await readBucketPlacements(this.#dataDir) }, version: 0, stamp: undefined };
  }

  /** Rewrites only the file whose part changed (a bucket's choice leaves runtime-placements.json as it was). */
  async write(next: RuntimeDocument, basedOn: KeptDocument): Promise<KeptDocument> {
    const before = basedOn.document;
    if (JSON.stringify([before.backends, before.placements]) !== JSON.stringify([next.backends, next.placements])) {
      await writeRuntimePlacements(this.#dataDir, { backends: next.backends, placements: next.placements }, this.#box);
    }
    if (JSON.stringify([...before.buckets]) !== JSON.stringify([...next.buckets])) await writeBucketPlacements(this.#dataDir, next.buckets);
    return { document: next, version: 0, stamp: undefined };
  }
}

/** The row as kept: secrets sealed, buckets as an object. */
interface DocumentRow {
  format: 1;
  version: number;
  backends: KeptBackend[];
  placements: PlacementConfig[];
  buckets: Record<string, string>;
}

/** The shared store's row. */
export class SettingsRuntimeDocuments implements RuntimeDocumentStore {
  readonly shared = true;
  readonly sources: RuntimeSources = { backends: `the metadata store's ${RUNTIME_DOCUMENT_SETTING} setting`, buckets: `the metadata store's ${RUNTIME_DOCUMENT_SETTING} setting` };
  readonly #meta: MetadataStore;
  readonly #box: SecretBox;

  private constructor(meta: MetadataStore, box: SecretBox) {
    this.#meta = meta;
    this.#box = box;
  }

  /** The shared document, after importing a single node's files from `dataDir` if the store has none yet. */
  static async open(meta: MetadataStore, box: SecretBox, dataDir: string, logger: Logger): Promise<SettingsRuntimeDocuments> {
    const documents = new SettingsRuntimeDocuments(meta, box);
    await documents.#importFiles(dataDir, logger);
    return documents;
  }

  async read(): Promise<KeptDocument> {
    const text = await this.#meta.getSetting(RUNTIME_DOCUMENT_SETTING);
    if (text === undefined) return { document: emptyDocument(), version: 0, stamp: undefined };
    return { document: this.#parse(text), version: versionOf(text, this.sources.backends), stamp: text };
  }

  /** The row's text as it is now (undefined: none yet): the poll compares it with what it applied, and parses only a change. */
  readStamp(): Promise<string | undefined> {
    return this.#meta.getSetting(RUNTIME_DOCUMENT_SETTING);
  }

  parseKept(stamp: string | undefined): KeptDocument {
    if (stamp === undefined) return { document: emptyDocument(), version: 0, stamp };
    return { document: this.#parse(stamp), version: versionOf(stamp, this.sources.backends), stamp };
  }

  async write(next: RuntimeDocument, basedOn: KeptDocument): Promise<KeptDocument> {
    const row: DocumentRow = {
      format: 1,
      version: basedOn.version + 1,
      backends: sealBackends(next.backends, this.#box),
      placements: next.placements,
      buckets: Object.fromEntries([...next.buckets].sort(([a], [b]) => (a < b ? -1 : 1))),
    };
    const text = JSON.stringify(row);
    if (!(await this.#meta.putSettingIf(RUNTIME_DOCUMENT_SETTING, text, basedOn.stamp))) {
      throw new StaleDocumentError(`another node changed the run-time placements since version ${basedOn.version} was read`);
    }
    return { document: next, version: row.version, stamp: text };
  }

  #parse(text: string): RuntimeDocument {
    const source = this.sources.backends;
    let row: Partial<DocumentRow>;
    try {
      row = JSON.parse(text) as Partial<DocumentRow>;
    } catch {
      throw new ConfigError(`${source}: not valid JSON`);
    }
    if (row.format !== 1 || !Array.isArray(row.backends) || !Array.isArray(row.placements) || typeof row.buckets !== 'object' || row.buckets === null) {
      throw new ConfigError(`${source}: not a Talus run-time placements document`);
    }
    const buckets = Object.entries(row.buckets);
    if (!buckets.every(([, placement]) => typeof placement === 'string')) throw new ConfigError(`${source}: not a Talus run-time placements document`);
    return { backends: openBackends(row.backends, this.#box, source), placements: row.placements, buckets: new Map(buckets) };
  }

  /**
   * A single node's files, once: when the store has no document yet (a
   * migrated installation's first --meta start), they become version 1 and
   * are renamed *.imported. When it has one, the files are left alone (the
   * shared document wins) and a warning says so.
   */
  async #importFiles(dataDir: string, logger: Logger): Promise<void> {
    const files = [RUNTIME_PLACEMENTS_FILE, BUCKET_PLACEMENTS_FILE].map((file) => join(dataDir, file));
    const present = (await Promise.all(files.map((path) => readFile(path).then(() => true, () => false)))).some(Boolean);
    if (!present) return;
    const kept = await this.read();
    if (kept.stamp !== undefined) {
      logger.warn('run-time placement files in the data directory are ignored: the shared metadata store keeps its own', { dataDir });
      return;
    }
    const fromFiles = await new FileRuntimeDocuments(dataDir, this.#box).read();
    await this.write(fromFiles.document, kept); // StaleDocumentError: another node imported its own first; start again
    for (const path of files) await rename(path, `${path}${IMPORTED_SUFFIX}`).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    const directory = await openFile(dirname(files[0]!), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
    logger.info('imported the data directory\'s run-time placements into the shared metadata store', { backends: fromFiles.document.backends.length, placements: fromFiles.document.placements.length, buckets: fromFiles.document.buckets.size });
  }
}

function versionOf(text: string, source: string): number {
  let version: unknown;
  try {
    version = (JSON.parse(text) as { version?: unknown }).version;
  } catch {
    throw new ConfigError(`${source}: not valid JSON`);
  }
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) throw new ConfigError(`${source}: not a Talus run-time placements document`);
  return version;
}
