/**
 * Region discovery in the admin API: ProbeEndpoints measures candidate
 * endpoints; RecommendPlacement proposes a placement over the k + m best, as
 * talus.toml text to review and add (backends and placements change with a
 * restart: see docs/ADMIN.md, "Not yet").
 */
import { DATA_SHARDS_MAX, PARITY_SHARDS_MAX } from '../erasure/index.ts';
import { operation } from './define.ts';
import { addRuntimeBackend, addRuntimePlacement, checkRuntimeChanges } from './runtime-config-operations.ts';
import { AdminError } from './errors.ts';
import { ENDPOINTS_MAX, type EndpointLatency, PROBES_DEFAULT, PROBES_MAX, REGION_PLACEHOLDER, candidates, probeEndpoints } from './region-discovery.ts';

const CANDIDATE_FIELDS = {
  endpoints: { type: 'string[]', description: 'Endpoint URLs to measure (http or https).', maxLength: ENDPOINTS_MAX },
  template: { type: 'string', description: `A provider's endpoint URL with ${REGION_PLACEHOLDER}, e.g. https://s3.${REGION_PLACEHOLDER}.amazonaws.com`, maxLength: 512 },
  regions: { type: 'string[]', description: 'The regions the template is filled with.', maxLength: ENDPOINTS_MAX },
  probes: { type: 'integer', description: `Round trips measured per endpoint (default ${PROBES_DEFAULT}), after one that opens the connection.`, minimum: 1, maximum: PROBES_MAX },
} as const;

async function measured(input: { endpoints?: string[]; template?: string; regions?: string[]; probes?: number }): Promise<EndpointLatency[]> {
  let list;
  try {
    list = candidates(input);
  } catch (error) {
    throw new AdminError('InvalidRequest', (error as Error).message);
  }
  return probeEndpoints(list, input.probes ?? PROBES_DEFAULT);
}

/** A backend name talus.toml accepts, from the region or the host. */
function backendName(result: EndpointLatency, taken: Set<string>): string {
  const base = (result.region ?? new URL(result.endpoint).host).toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 56) || 'backend';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

function placementToml(name: string, dataShards: number, parityShards: number, backends: readonly string[]): string {
  const list = `[${backends.map((backend) => JSON.stringify(backend)).join(', ')}]`;
  if (dataShards === 1 && parityShards === 0) return `[placements.${name}]\ntype = "single"\nbackend = ${JSON.stringify(backends[0])}\n`;
  if (dataShards === 1) return `[placements.${name}]\ntype = "replica"\ncopies = ${parityShards + 1}\nbackends = ${list}\n`;
  return `[placements.${name}]\ntype = "erasure"\ndata_shards = ${dataShards}\nparity_shards = ${parityShards}\nbackends = ${list}\n`;
}

export const REGION_OPERATIONS = {
  ProbeEndpoints: operation({
    summary: 'Measures candidate S3 endpoints\' latency (a list, or a template and regions): p50, p95, p99 and jitter of N unsigned HEAD round trips each, best first.',
    input: CANDIDATE_FIELDS,
    output: '{ endpoints: [{ endpoint, region, answered, failed, p50Ms, p95Ms, p99Ms, jitterMs, error }] }',
    async handler(_context, input) {
      return { endpoints: await measured(input) };
    },
  }),
  RecommendPlacement: operation({
    summary: 'Measures the candidates and proposes a placement over the k + m best that answered every probe, as talus.toml text (credentials and bucket to fill in).',
    input: {
      ...CANDIDATE_FIELDS,
      k: { type: 'integer', description: 'Data shards (1: replicas or a single copy).', required: true, minimum: 1, maximum: DATA_SHARDS_MAX },
      m: { type: 'integer', description: 'Parity shards (replicas: copies − 1).', required: true, minimum: 0, maximum: PARITY_SHARDS_MAX },
      name: { type: 'string', description: 'The placement\'s name (default "discovered").', maxLength: 63 },
      create: { type: 'boolean', description: 'Also add the backends and the placement now (AddBackend, AddPlacement), with bucket, accessKeyId and secretAccessKey.' },
      bucket: { type: 'string', description: 'create: the bucket on every endpoint (created when missing).', maxLength: 63 },
      accessKeyId: { type: 'string', description: 'create: the access key ID for every endpoint.', maxLength: 256 },
      secretAccessKey: { type: 'string', description: 'create: its secret (kept as AddBackend keeps it; never answered).', maxLength: 256 },
    },
    output: '{ placement: { name, type, dataShards, parityShards, backends: [{ name, endpoint, region, p50Ms, p99Ms }] }, toml, endpoints, created }',
    async handler(context, input) {
      const credentials = input.create === true ? { bucket: input.bucket, accessKeyId: input.accessKeyId, secretAccessKey: input.secretAccessKey } : undefined;
      if (credentials !== undefined) {
        if (credentials.bucket === undefined || credentials.accessKeyId === undefined || credentials.secretAccessKey === undefined) throw new AdminError('InvalidRequest', 'create needs bucket, accessKeyId and secretAccessKey');
        checkRuntimeChanges(context); // before probing for a minute
      }
      if (input.k > 1 && input.m === 0) throw new AdminError('InvalidRequest', 'erasure coding needs m ≥ 1 (k = 1, m = 0 is a single copy)');
      const name = input.name ?? 'discovered';
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) throw new AdminError('InvalidRequest', 'field name must be lower-case letters, digits, _ and -');
      const endpoints = await measured(input);
      const reliable = endpoints.filter((result) => result.failed === 0 && result.p50Ms !== null);
      const width = input.k + input.m;
      if (reliable.length < width) throw new AdminError('Conflict', `${reliable.length} endpoints answered every probe; k + m = ${width} are needed`);
      const taken = new Set<string>(input.create === true ? context.storage?.placement?.store.backends().map((backend) => backend.name) ?? [] : []);
      const chosen = reliable.slice(0, width).map((result) => ({ name: backendName(result, taken), endpoint: new URL(result.endpoint).origin, region: result.region ?? null, p50Ms: result.p50Ms, p99Ms: result.p99Ms }));
      const type = input.k === 1 ? (input.m === 0 ? 'single' : 'replica') : 'erasure';
      const toml = chosen.map((backend) =>
        `[backends.${backend.name}]\ntype = "s3"\nendpoint = ${JSON.stringify(backend.endpoint)}\n` +
        `region = ${JSON.stringify(backend.region ?? 'us-east-1')}\nbucket = "FILL-IN"\naccess_key_id = "FILL-IN"\nsecret_access_key = "FILL-IN"\n`,
      ).join('') + placementToml(name, input.k, input.m, chosen.map((backend) => backend.name));
      if (credentials !== undefined) {
        // One by one, each validated and kept as AddBackend keeps it; a failure leaves those added before (ListBackends shows them).
        for (const backend of chosen) {
          await addRuntimeBackend(context, {
            name: backend.name, type: 's3', endpoint: backend.endpoint, region: backend.region ?? 'us-east-1', bucket: credentials.bucket!,
            accessKeyId: credentials.accessKeyId!, secretAccessKey: credentials.secretAccessKey!, prefix: '', multipartThresholdBytes: undefined, partBytes: undefined,
          });
        }
        await addRuntimePlacement(context, { name, type, dataShards: input.k, parityShards: input.m, backends: chosen.map((backend) => backend.name) });
      }
      return { placement: { name, type, dataShards: input.k, parityShards: input.m, backends: chosen }, toml, endpoints, created: credentials !== undefined };
    },
  }),
} as const;
