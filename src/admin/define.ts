/**
 * How an admin operation is defined: its input shape (validated, typed and
 * published in the OpenAPI document from the same object), what it answers,
 * and its handler, with what every handler may use (AdminContext). The
 * operation families (operations.ts and its siblings) build on this.
 */
import type { AuditLog } from '../audit/audit-log.ts';
import type { TalusConfig } from '../config/config.ts';
import type { Engine } from '../engine/engine.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { OpenPlacement } from '../placement/open-placement.ts';
import type { RuntimeChanges } from '../placement/runtime-sync.ts';
import type { ReloadReport } from '../placement/reload-config.ts';
import type { Principal } from '../authz/index.ts';
import type { Principals } from '../principals/principals.ts';
import type { AdminTokens } from './tokens.ts';
import { type InputOf, type InputSpec, validateInput } from './schema.ts';

export interface AdminServerInfo {
  version: string;
  startedMs: number;
  region: string;
  workers: number;
}

/**
 * The data directory this process owns and what runs over it: statistics,
 * queues, backends. Absent in servers built without it (then the operations
 * that need it answer ServiceUnavailable).
 */
export interface AdminStorage {
  dataDir: string;
  meta: MetadataStore;
  /** The configuration the server started with (backends, placements, buckets' placements). */
  config: TalusConfig;
  /** Backends, placed blob store and healer; undefined without placements. */
  placement: OpenPlacement | undefined;
  /**
   * Other nodes may serve the same metadata (a shared metadata store): they
   * must be able to read every blob, so nothing may go to this node's data
   * directory (the local placement).
   */
  sharedMetadata: boolean;
  /**
   * Where run-time changes of backends, placements and buckets' placements
   * are kept, and the queue they are made in (src/placement/runtime-sync.ts);
   * undefined without placements.
   */
  runtime?: RuntimeChanges | undefined;
  /**
   * With --workers: tells every worker to apply the run-time changes just
   * kept, resolving once they did. Absent in a single process.
   */
  placementsChanged?: () => Promise<void>;
  /** Reads talus.toml again and applies it (src/placement/reload-config.ts); absent without --config. */
  reloadConfig?: () => Promise<ReloadReport>;
}

/** Who is calling: a signed key, or a bearer token acting for the key that created it. */
export interface AdminCaller {
  principal: Principal;
  /** The signing key, or the creator's key of the token. */
  accessKeyId: string;
  /** The token's ID when the call came with a bearer token. */
  tokenId: string | undefined;
}

/** What every handler may use. */
export interface AdminContext {
  principals: Principals;
  engine: Engine;
  server: AdminServerInfo;
  audit: AuditLog;
  /** The caller's canonical ID: the owner of buckets it creates without naming one. */
  callerCanonicalId: string;
  storage?: AdminStorage | undefined;
  tokens?: AdminTokens | undefined;
  caller?: AdminCaller | undefined;
}

interface OperationDefinition<S extends InputSpec> {
  summary: string;
  input: S;
  /** What the answer holds, for the OpenAPI document. */
  output: string;
  /** It changes users or keys: the server reloads its key cache after it, so the very next request sees the change. */
  changesCredentials?: true;
  /**
   * It makes or revives a credential, or widens someone's rights, and what it
   * made would outlive a bearer token: tokens may never call it, whatever
   * their scope (an expiring token must not leave a 10-year key behind).
   */
  refusedToTokens?: true;
  handler(context: AdminContext, input: InputOf<S>): Promise<unknown>;
}

/** An operation as the server runs it: the body is validated against `input` before the handler sees it. */
export interface AdminOperation {
  summary: string;
  input: InputSpec;
  output: string;
  changesCredentials: boolean;
  refusedToTokens: boolean;
  run(context: AdminContext, body: unknown): Promise<unknown>;
}

/** Ties each entry's input shape to its handler's parameter type. */
export function operation<const S extends InputSpec>(definition: OperationDefinition<S>): AdminOperation {
  return {
    summary: definition.summary,
    input: definition.input,
    output: definition.output,
    changesCredentials: definition.changesCredentials === true,
    refusedToTokens: definition.refusedToTokens === true,
    run: (context, body) => definition.handler(context, validateInput(definition.input, body)),
  };
}
