/**
 * ReloadConfig: talus.toml read again and applied without a restart, as
 * SIGHUP does (src/placement/reload-config.ts). Not refused to bearer
 * tokens: it applies only what the file the operator wrote says — less than
 * AddBackend or SetBucketPlacement, which tokens scoped to them may call —
 * and leaves nothing behind that outlives the token.
 */
import { ConfigError } from '../config/config.ts';
import { ReloadRefusedError } from '../placement/reload-config.ts';
import { operation } from './define.ts';
import { AdminError } from './errors.ts';
import { requireStorage } from './storage-operations.ts';

export const RELOAD_OPERATIONS = {
  ReloadConfig: operation({
    summary: 'Reads talus.toml (the --config the server started with) again and applies what changed, as SIGHUP does: backends and placements added, changed (a backend\'s name and type stay) or removed, buckets\' placement lines and the default placement (objects follow through re-placement). All or nothing: a file that does not parse or clashes with the run-time changes, a removed backend that still holds blobs, a changed type or hybrid placement change nothing and say why. [health] and [replication] take effect at a restart (needsRestart).',
    input: {},
    output: '{ path, backends: { added, changed, removed }, placements: { added, changed, removed }, buckets: ["bucket: before → after"], defaultPlacement, needsRestart, replacementStarted, workersFailed }',
    async handler(context) {
      const storage = requireStorage(context);
      if (storage.reloadConfig === undefined) throw new AdminError('Conflict', 'the server was started without --config: there is no talus.toml to reload');
      try {
        return await storage.reloadConfig();
      } catch (error) {
        if (error instanceof ConfigError) throw new AdminError('InvalidRequest', `talus.toml not reloaded, nothing changed: ${error.message}`);
        if (error instanceof ReloadRefusedError) throw new AdminError('Conflict', `talus.toml not reloaded, nothing changed: ${error.message}`);
        throw error;
      }
    },
  }),
} as const;
