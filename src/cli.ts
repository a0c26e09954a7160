/**
 * The `talus` command.
 *
 * Every subcommand's module is imported when that subcommand runs, never up
 * front: the server, the admin API and the configuration parser cost ~0.35 s
 * of CPU and ~40 MiB to load, which `talus scan`, `talus users` and the
 * others never use (issue 14), and which `--workers N`'s primary would
 * otherwise carry too (issue 17). Only node: built-ins load here.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';

async function usage(): Promise<string> {
  const [{ PRINCIPALS_USAGE }, { ADMIN_USAGE }] = await Promise.all([import('./principals/cli.ts'), import('./admin/cli.ts')]);
  return `Usage: talus server [DATA_DIR] [--port 9000] [--address 0.0.0.0] [--domain example.com] [--region us-east-1] [--workers auto]
                    [--config talus.toml] [--adopt-metadata] [--meta postgres://…] [--console-address [HOST]:PORT|none]
                    [--access-log FILE|-] [--metrics-public]
       talus migrate DATA_DIR --to postgres://…
                                     copy a data directory's metadata into an empty PostgreSQL database
       talus heal [DATA_DIR] --config talus.toml [--deep] | --status
                                     repair shards of placed objects, or show what is queued
       talus backends --config talus.toml
                                     each backend's state, latency, free space and S3 features
       talus restore DATA_DIR --config talus.toml [--store ID] [--partial] [--secret-key-file FILE]
                                     rebuild a lost metadata database from its replicas on the backends
       talus recover --scan DATA_DIR --config talus.toml
                                     last resort: rebuild placed objects' metadata from their records and shards
${PRINCIPALS_USAGE}
${ADMIN_USAGE}
                                     (users, keys and policy work while the server runs: docs/ACCESS.md)
       talus bench --endpoint URL --bucket NAME [--workload put|get|head|delete|list|mixed]
                   [--size 4KiB | --size 4KiB-10MiB] [--concurrency 64] [--duration 10s]
                   [--operations N] [--keys 1000] [--json] ...
                                     load-test any S3 endpoint (talus bench --help for all options)
       talus scan s3://BUCKET[/PREFIX] --endpoint URL [--concurrency 64] [--format jsonl|csv] [--metadata auto|head|list|none]
                                     every object with its metadata, to stdout (talus scan --help)

Serves the S3 API from DATA_DIR (default ./data). Credentials come from
TALUS_ROOT_USER / TALUS_ROOT_PASSWORD, or are generated on first start and
kept in the data directory. --workers N serves from N processes sharing the
data directory; the default, auto, is one per core within the container's
CPU quota, at most 8 (one process where only one may serve: --meta nodes,
[replication] mode = "quorum"). --config
declares backends (local directories, remote S3 endpoints) and placements
(single, replica N, erasure k+m, hybrid) per bucket: see docs/PLACEMENT.md;
SIGHUP (or the admin API's ReloadConfig) reads it again and applies it, or
changes nothing and logs why (docs/ADMIN.md). The server refuses to start
when its metadata database does not belong with its blobs (missing, empty,
older, another store's); --adopt-metadata accepts the database as it is and
moves blobs it does not know to DATA_DIR/lost+found (docs/ARCHITECTURE.md).
--console-address serves the JSON admin API (docs/ADMIN.md) on another
listener: default port 9001 on the --address, skipped with a warning when that
port is taken; none turns it off. The same listener serves Prometheus metrics
at /metrics (to a bearer token set in TALUS_METRICS_TOKEN, or to anyone with
--metrics-public) and /health/live, /health/ready. --access-log writes one JSON
line per S3 request to FILE (- for stdout).
--meta postgres://… (or TALUS_META) keeps the metadata in PostgreSQL, shared
by several nodes; every placement must then be on shared backends, and
TALUS_SECRET_KEY the same on every node (docs/SCALE-OUT.md).`;
}

/**
 * `--console-address [HOST]:PORT` (MinIO's syntax: `:9001` listens on every
 * address), `none`, or absent: port 9001 on the S3 listener's address, as a
 * convenience that gives way (a warning) when the port is taken.
 */
function adminListener(value: string | undefined, s3Address: string, defaultPort: number): { admin?: { port: number; address: string; optional?: boolean } } {
  if (value === 'none') return {};
  if (value === undefined) return { admin: { port: defaultPort, address: s3Address, optional: true } };
  const colon = value.lastIndexOf(':');
  const host = colon === -1 ? '' : value.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(colon === -1 ? value : value.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --console-address ${value}: [HOST]:PORT or none`);
  return { admin: { port, address: host === '' ? '0.0.0.0' : host } };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'users' || command === 'keys' || command === 'policy') {
    const { principalsCommand } = await import('./principals/cli.ts');
    return principalsCommand(command, rest);
  }
  if (command === 'heal' || command === 'backends') {
    const { healCommand, backendsCommand } = await import('./placement/cli.ts');
    return command === 'heal' ? healCommand(rest) : backendsCommand(rest);
  }
  if (command === 'admin') {
    const { adminCommand } = await import('./admin/cli.ts');
    return adminCommand(rest);
  }
  if (command === 'migrate') {
    const { migrateCommand } = await import('./meta/postgres/migrate.ts');
    return migrateCommand(rest);
  }
  if (command === 'restore') {
    const { restoreCommand } = await import('./replication/cli.ts');
    return restoreCommand(rest);
  }
  if (command === 'recover') {
    const { recoverCommand } = await import('./replication/cli.ts');
    return recoverCommand(rest);
  }
  if (command === 'bench') {
    // Loaded on demand: the server never needs the client side.
    const { benchCommand } = await import('./loadgen/cli.ts');
    return benchCommand(rest);
  }
  if (command === 'scan') {
    // Loaded on demand, as bench is.
    const { scanCommand } = await import('./scan/cli.ts');
    return scanCommand(rest);
  }
  if (command !== 'server') {
    process.stdout.write(`${await usage()}\n`);
    return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  }
  // Before the server allocates (its modules included): bounds what V8 keeps of its garbage (util/heap-policy.ts).
  const { applyServerHeapPolicy, applyPrimaryNurseryPolicy } = await import('./util/heap-policy.ts');
  applyServerHeapPolicy();
  // Gives back what glibc keeps of freed Buffers after heavy traffic (util/freed-memory.ts).
  (await import('./util/freed-memory.ts')).startFreedMemoryRelease();
  const { WORKERS_MAX } = await import('./cluster.ts');
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      port: { type: 'string', default: '9000' },
      address: { type: 'string', default: '0.0.0.0' },
      domain: { type: 'string' },
      region: { type: 'string', default: 'us-east-1' },
      workers: { type: 'string' },
      config: { type: 'string' },
      'adopt-metadata': { type: 'boolean', default: false },
      'console-address': { type: 'string' },
      'access-log': { type: 'string' },
      'metrics-public': { type: 'boolean', default: false },
      meta: { type: 'string' },
    },
  });
  const metaUrl = values.meta ?? process.env['TALUS_META'];
  if (metaUrl !== undefined && !/^postgres(ql)?:\/\//.test(metaUrl)) throw new Error(`invalid --meta ${metaUrl}: a postgres:// URL`);
  if (metaUrl !== undefined && values['adopt-metadata']) throw new Error('--adopt-metadata is for a data directory\'s own database, not --meta');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}`);
  const config = values.config === undefined ? undefined : await (await import('./config/config.ts')).loadConfig(values.config);
  // auto, the default: several processes serve more on several cores (docs/PERFORMANCE.md, "Default worker count"),
  // one where the configuration allows only one (an explicit --workers N there is refused with the reason).
  const onlyOneProcess = metaUrl !== undefined || config?.replication?.mode === 'quorum';
  const workersText = values.workers ?? 'auto';
  const { autoWorkerCount, readCgroupCpuLimit } = await import('./worker-count.ts');
  const workers = workersText !== 'auto' ? Number(workersText) : onlyOneProcess ? 1 : autoWorkerCount(availableParallelism(), readCgroupCpuLimit());
  if (!Number.isInteger(workers) || workers < 1 || workers > WORKERS_MAX) throw new Error(`invalid --workers ${workersText} (1..${WORKERS_MAX} or auto)`);
  // Before the primary loads the server's modules, and again once its threads started.
  if (workers > 1) applyPrimaryNurseryPolicy();
  const [{ startTalus }, { ADMIN_PORT_DEFAULT }] = await Promise.all([import('./talus.ts'), import('./admin/paths.ts')]);
  const talus = await startTalus({
    ...(config === undefined || values.config === undefined ? {} : { config, configPath: values.config }),
    dataDir: positionals[0] ?? './data',
    port,
    address: values.address,
    domain: values.domain,
    region: values.region,
    workers,
    adoptMetadata: values['adopt-metadata'],
    ...adminListener(values['console-address'], values.address, ADMIN_PORT_DEFAULT),
    metrics: { token: process.env['TALUS_METRICS_TOKEN'] || undefined, public: values['metrics-public'] },
    accessLog: values['access-log'],
    ...(metaUrl === undefined ? {} : { metaUrl }),
    rootAccessKeyId: process.env['TALUS_ROOT_USER'],
    rootSecretAccessKey: process.env['TALUS_ROOT_PASSWORD'],
  });
  if (workers > 1) applyPrimaryNurseryPolicy();
  // The secret is printed once, when it was generated: logs of later starts
  // (journald, container logs) never hold it.
  const secretLine =
    talus.credentialsSource === 'generated'
      ? talus.credentials.secretAccessKey
      : talus.credentialsSource === 'given'
        ? '(from TALUS_ROOT_PASSWORD)'
        : '(printed on first start only; `talus keys add` makes another root key)';
  process.stdout.write(
    `Talus S3 server listening on ${talus.url}${talus.workers > 1 ? ` (${talus.workers} worker processes)` : ''}\n  AccessKeyId:     ${talus.credentials.accessKeyId}\n  SecretAccessKey: ${secretLine}\n`
      + (talus.adminUrl === undefined ? '' : `  Admin API:       ${talus.adminUrl}/talus/admin/v1/\n`)
      + (talus.adminUrl === undefined ? '' : `  Console:         ${talus.adminUrl}/console/\n`),
  );
  const stop = (signal: string): void => {
    process.stdout.write(`${signal}: finishing in-flight requests\n`);
    talus.close().then(() => process.exit(0), (error) => {
      process.stderr.write(`shutdown failed: ${String(error)}\n`);
      process.exit(1);
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  // As nginx and HAProxy do: talus.toml read again and applied, or nothing changed (the server logs which, and why).
  process.on('SIGHUP', () => {
    if (talus.reloadConfig === undefined) process.stderr.write('SIGHUP: nothing to reload (started without --config)\n');
    else talus.reloadConfig().catch(() => undefined); // logged by the server
  });
  // Non-zero, so a supervisor (systemd Restart=on-failure, Kubernetes) sees it and acts.
  void talus.failed.then((error) => {
    process.stderr.write(`talus: ${error.message}\n`);
    talus.close().finally(() => process.exit(1));
  });
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`talus: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
