/**
 * One process's view of the run-time placement document (runtime-document.ts):
 * the one queue in which the admin API's changes and the applying of other
 * nodes' changes run, one at a time, and — on nodes sharing a PostgreSQL
 * store — the poll that follows other nodes and the fence that bounds how
 * long a node that fell behind keeps writing.
 *
 * A change reads the newest document; if another node changed it since this
 * process last applied one, that document is applied first, so the change is
 * decided against what every node will serve. It then writes (compare-and-set
 * on a shared store) and applies itself here before it answers. Other nodes
 * see it at their next poll: every RUNTIME_POLL_INTERVAL_MS, one primary-key
 * read of the row (the text is compared with what was applied; only a new
 * one is parsed and applied with OpenPlacement.applyConfig).
 *
 * A node that cannot bring itself up to the shared document — the database
 * unreachable, a backend of it that does not open, an entry that clashes
 * with this node's talus.toml — keeps serving reads, but once it has not
 * been up to date for RUNTIME_STALE_MAX_MS it refuses writes that add data
 * (503 ServiceUnavailable) and reports unready, until it is: so a node that
 * missed a change (a placement no longer naming a backend, a backend
 * removed) writes under the old one for at most that long.
 */
import type { TalusConfig } from '../config/config.ts';
import { assert } from '../util/assert.ts';
import type { Logger } from '../util/logger.ts';
import { S3Error } from '../util/s3-error.ts';
import type { OpenPlacement } from './open-placement.ts';
import { type KeptDocument, type RuntimeDocument, type RuntimeDocumentStore, SettingsRuntimeDocuments } from './runtime-document.ts';
import { withRuntimeChanges } from './runtime-placements.ts';

/** How often a node sharing its metadata looks for other nodes' changes: the bound on how late it follows one (plus opening a new backend). */
export const RUNTIME_POLL_INTERVAL_MS = 1_000;
/**
 * How long a node may go without being up to date with the shared document
 * before it refuses writes that add data: ten polls, so a slow database or a
 * slow backend open does not flap it, and short against the time an operator
 * takes between moving data off a backend and removing it.
 */
export const RUNTIME_STALE_MAX_MS = 10 * RUNTIME_POLL_INTERVAL_MS;

export class RuntimeChanges {
  readonly store: RuntimeDocumentStore;
  /** talus.toml's configuration: the one the process started with, or the last one a reload applied. */
  #base: TalusConfig;
  readonly #placement: OpenPlacement | undefined;
  readonly #logger: Logger;
  #applied: KeptDocument;
  #queue: Promise<unknown> = Promise.resolve();
  /** When this process was last known up to date with the kept document. */
  #freshMs = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #pollQueued = false;
  /** The document whose applying failed (logged once, tried again at each poll). */
  #failedStamp: string | undefined;

  /** `applied`: the document the process started with (its configuration includes it). */
  constructor(options: { store: RuntimeDocumentStore; base: TalusConfig; placement: OpenPlacement | undefined; applied: KeptDocument; logger: Logger }) {
    this.store = options.store;
    this.#base = options.base;
    this.#placement = options.placement;
    this.#applied = options.applied;
    this.#logger = options.logger;
  }

  /** What this process serves: talus.toml's configuration with `document`. */
  configWith(document: RuntimeDocument): TalusConfig {
    return withRuntimeChanges(this.#base, document, this.store.sources);
  }

  /** talus.toml's configuration as this process serves it now. */
  base(): TalusConfig {
    return this.#base;
  }

  /** Inside serially: talus.toml was reloaded (src/placement/reload-config.ts), and its new configuration is applied. */
  rebase(base: TalusConfig): void {
    this.#base = base;
  }

  /** Runs `work` after every change and poll queued before it, never beside one. */
  serially<T>(work: () => Promise<T>): Promise<T> {
    const done = this.#queue.then(work);
    this.#queue = done.catch(() => undefined);
    return done;
  }

  /** Inside serially: the newest document, applied here first when another node changed it since. */
  async read(): Promise<KeptDocument> {
    const kept = await this.store.read();
    if (kept.stamp !== this.#applied.stamp) await this.#apply(kept);
    return kept;
  }

  /** Inside serially: keeps `next` over `basedOn` (StaleDocumentError when another node won); the caller applies it here. */
  async write(next: RuntimeDocument, basedOn: KeptDocument): Promise<KeptDocument> {
    const written = await this.store.write(next, basedOn);
    this.#applied = written;
    this.#freshMs = Date.now();
    return written;
  }

  /** On a shared store: follows other nodes' changes from now on. */
  start(): void {
    if (!(this.store instanceof SettingsRuntimeDocuments)) return;
    const store = this.store;
    this.#freshMs = Date.now(); // up to date as of the start's read; start-up's own time does not count against it
    this.#timer = setInterval(() => {
      if (this.#pollQueued) return; // a slow change or poll: one waiting is enough
      this.#pollQueued = true;
      void this.#poll(store).finally(() => (this.#pollQueued = false));
    }, RUNTIME_POLL_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Stops polling and waits for the change or poll in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#queue;
  }

  /** Shared store only: why this node refuses writes that add data now (it fell behind the shared document), or undefined. */
  staleReason(): string | undefined {
    if (!this.store.shared) return undefined;
    const behindMs = Date.now() - this.#freshMs;
    if (behindMs <= RUNTIME_STALE_MAX_MS) return undefined;
    return `this node has not been up to date with the shared run-time placements for ${Math.round(behindMs / 1000)} s`;
  }

  /** The refusal of a write that adds data while staleReason() holds. */
  staleRefusal(): S3Error | undefined {
    const reason = this.staleReason();
    return reason === undefined ? undefined : new S3Error('ServiceUnavailable', `Writes are refused on this node: ${reason}. Retry, or use another node.`);
  }

  async #apply(kept: KeptDocument): Promise<void> {
    assert(this.#placement !== undefined, 'run-time placements are applied to an open placement');
    await this.#placement.applyConfig(this.configWith(kept.document));
    this.#applied = kept;
  }

  /**
   * Reads the row outside the queue: when it is the applied one (nearly
   * always) the node is up to date even while a long change of its own
   * (RemoveBackend's count) holds the queue. Only a new one waits its turn.
   */
  async #poll(store: SettingsRuntimeDocuments): Promise<void> {
    let stamp: string | undefined;
    try {
      stamp = await store.readStamp();
      if (stamp !== this.#applied.stamp) {
        await this.serially(async () => {
          stamp = await store.readStamp(); // a change of this node's may have written it meanwhile
          if (stamp !== this.#applied.stamp) await this.#apply(store.parseKept(stamp));
        });
      }
      this.#freshMs = Date.now();
      this.#failedStamp = undefined;
    } catch (error) {
      // Once per document, not every second (a failed read is the database's, which the node reports anyway).
      if (stamp !== undefined && stamp !== this.#failedStamp) this.#logger.error('applying another node\'s run-time placement changes failed; this node keeps the previous ones', { error: error instanceof Error ? error.message : String(error) });
      if (stamp !== undefined) this.#failedStamp = stamp;
    }
  }
}
