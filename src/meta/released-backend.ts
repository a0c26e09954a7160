/**
 * RemoveBackend with force rewrites the locations of purge-queue entries in
 * both metadata stores: the one rule for it, here.
 */

/** A blob location (JSON, placement/blob-location.ts) with `gone` in place of `backend` among its shards' backends ("on"). */
export function withoutBackend(location: string, backend: string, gone: string): string {
  const parsed = JSON.parse(location) as { on: string[] };
  parsed.on = parsed.on.map((name) => (name === backend ? gone : name));
  return JSON.stringify(parsed);
}
