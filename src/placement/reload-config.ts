/**
 * Reloading talus.toml without a restart (the admin API's ReloadConfig, and
 * SIGHUP on the server process): the file the server was started with
 * (--config) is read again, validated with the run-time document exactly as
 * a start would (src/config's parser, then withRuntimeChanges), and the
 * difference is applied through the path run-time changes take
 * (OpenPlacement.applyConfig; with --workers every worker is told, with the
 * new talus.toml configuration). Either all of it is applied or none of it:
 *
 * - a file that does not parse, or clashes with the run-time document,
 *   changes nothing (ConfigError, saying why);
 * - a backend whose type changed, or that is gone from the file while blobs
 *   are recorded on it (countBlobsOnBackend: objects, upload parts, the purge
 *   queue), is refused (ReloadRefusedError), changing nothing;
 * - a backend that cannot be opened as the file now says puts the previous
 *   configuration back (and is refused).
 *
 * What only a start reads ([health], [replication]) is left as it was and
 * named in the answer's `needsRestart`. Objects follow a bucket's new
 * placement, and a placement's new definition (a hybrid's threshold or
 * parts too), through re-placement: a pass starts once the reload applied.
 */
import { type BackendConfig, type TalusConfig, loadConfig } from '../config/config.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { OpenPlacement } from './open-placement.ts';
import { withRuntimeChanges } from './runtime-placements.ts';
import type { RuntimeChanges } from './runtime-sync.ts';

/** The reload changes nothing: a removed backend still holds blobs, or a backend's type changed. */
export class ReloadRefusedError extends Error {
  override name = 'ReloadRefusedError';
}

/** What a reload changed, by name (never a secret). */
export interface ReloadReport {
  /** The file read. */
  path: string;
  backends: { added: string[]; changed: string[]; removed: string[] };
  placements: { added: string[]; changed: string[]; removed: string[] };
  /** Buckets whose placement line changed, as `bucket: before → after`. */
  buckets: string[];
  /** `before → after`, when the default placement changed. */
  defaultPlacement: string | undefined;
  /** Sections that changed in the file but take effect only at a restart (left as they were). */
  needsRestart: string[];
  /** A re-placement pass was started to move objects (false: one runs already). */
  replacementStarted: boolean;
  /** With --workers: the workers that did not apply it (this process did), else undefined. */
  workersFailed: string | undefined;
}

export interface ReloadTarget {
  /** talus.toml's path, as given to --config. */
  path: string;
  runtime: RuntimeChanges;
  placement: OpenPlacement;
  meta: MetadataStore;
  /** With --workers: every worker applies `base` with the run-time document, resolving once all did. */
  tellWorkers?: ((base: TalusConfig) => Promise<void>) | undefined;
  /** The start's own checks of talus.toml beyond the parser's (a node sharing PostgreSQL: checkSharedPlacement); throws ConfigError. */
  check?: ((file: TalusConfig) => void) | undefined;
  /** Told what the process serves once the reload applied (talus.toml's with the run-time document). */
  onApplied?: ((served: TalusConfig) => void) | undefined;
}

function byName<T extends { name: string }>(entries: readonly T[]): Map<string, string> {
  return new Map(entries.map((entry) => [entry.name, JSON.stringify(entry)]));
}

function differences<T extends { name: string }>(before: readonly T[], after: readonly T[]): { added: string[]; changed: string[]; removed: string[] } {
  const old = byName(before);
  const next = byName(after);
  return {
    added: [...next.keys()].filter((name) => !old.has(name)),
    changed: [...next.keys()].filter((name) => old.has(name) && old.get(name) !== next.get(name)),
    removed: [...old.keys()].filter((name) => !next.has(name)),
  };
}

/** Reads, validates and applies talus.toml; the report says what changed. Runs in the run-time changes' queue. */
export function reloadConfig(target: ReloadTarget): Promise<ReloadReport> {
  const { runtime, placement } = target;
  return runtime.serially(async () => {
    const file = await loadConfig(target.path); // ConfigError: unreadable or invalid, nothing changed
    target.check?.(file);
    const kept = await runtime.read();
    const before = runtime.configWith(kept.document);
    const after = withRuntimeChanges(file, kept.document, runtime.store.sources); // ConfigError: clashes with the run-time document
    const backends = differences(before.backends, after.backends);
    const placements = differences(before.placements, after.placements);
    await checkReloadable(target, before, after, backends);

    const needsRestart: string[] = [];
    const base = runtime.base();
    if (JSON.stringify(base.health) !== JSON.stringify(file.health)) needsRestart.push('[health]');
    if (JSON.stringify(base.replication) !== JSON.stringify(file.replication)) needsRestart.push('[replication]');
    // Left as they were: the configuration applied (and given to workers) keeps the running ones.
    const applied: TalusConfig = { backends: file.backends, placements: file.placements, defaultPlacement: file.defaultPlacement, buckets: file.buckets, ...(base.health === undefined ? {} : { health: base.health }), ...(base.replication === undefined ? {} : { replication: base.replication }) };

    try {
      await placement.applyConfig(after);
    } catch (error) {
      await placement.applyConfig(before).catch(() => undefined); // what could be opened before opens again
      throw new ReloadRefusedError(`talus.toml could not be applied, the previous configuration stays: ${error instanceof Error ? error.message : String(error)}`);
    }
    runtime.rebase(applied);
    target.onApplied?.(after);
    // Applied here and kept for workers started later: a worker that failed gets it with the next change or its restart.
    const workersFailed = await target.tellWorkers?.(applied).then(() => undefined, (error: unknown) => (error instanceof Error ? error.message : String(error)));

    const buckets = [...new Set([...before.buckets.keys(), ...after.buckets.keys()])]
      .filter((bucket) => before.buckets.get(bucket) !== after.buckets.get(bucket))
      .map((bucket) => `${bucket}: ${before.buckets.get(bucket) ?? before.defaultPlacement} → ${after.buckets.get(bucket) ?? after.defaultPlacement}`);
    const defaultPlacement = before.defaultPlacement === after.defaultPlacement ? undefined : `${before.defaultPlacement} → ${after.defaultPlacement}`;
    const moved = buckets.length > 0 || defaultPlacement !== undefined || placements.changed.length > 0;
    const replacementStarted = moved ? placement.healNow({ deep: false }) : false;
    return { path: target.path, backends, placements, buckets, defaultPlacement, needsRestart, replacementStarted, workersFailed };
  });
}

/** The refusals that change nothing, checked before anything is applied. */
async function checkReloadable(target: ReloadTarget, before: TalusConfig, after: TalusConfig, backends: { changed: string[]; removed: string[] }): Promise<void> {
  const typeOf = (config: TalusConfig, name: string): BackendConfig['type'] | undefined => config.backends.find((backend) => backend.name === name)?.type;
  for (const name of backends.changed) {
    // Blobs name their backends: the same name must reach the same data (UpdateBackend's rule).
    if (typeOf(before, name) !== typeOf(after, name)) throw new ReloadRefusedError(`backend ${name} changed its type: a backend's name and type stay (add a backend under another name and move the data there)`);
  }
  for (const name of backends.removed) {
    const blobs = await target.meta.countBlobsOnBackend(name);
    if (blobs > 0) throw new ReloadRefusedError(`backend ${name} is gone from talus.toml but still holds shards of ${blobs} blob${blobs === 1 ? '' : 's'} (objects, parts of incomplete uploads, or blobs waiting in the purge queue): move its placements off it, let re-placement and the purge queue finish (GetHealStatus), then reload`);
  }
}
