/**
 * scale-out-list-1m in `npm run bench` (issue 16): delimiter listings of a
 * bucket of 1M keys (smoke mode: 2000) on Talus with its
 * SQLite metadata, on one Talus with a private PostgreSQL (`--meta`), and
 * on two Talus nodes sharing that database.
 *
 * The bucket is a tree of PREFIXES common prefixes with many keys each,
 * `tree/p-NNNN/<8 digits>`. Three pages of up to 1000 are listed through
 * real HTTP (ListObjectsV2, the load generator):
 *   root      prefix '', delimiter '/': all keys roll up into `tree/` (one
 *             seek past every key: 1 entry)
 *   prefixes  prefix `tree/`, delimiter '/': the PREFIXES common prefixes,
 *             one seek past each (a few hundred entries over all the keys)
 *   keys      prefix `tree/p-<middle>/`, delimiter '/': 1000 keys of one
 *             common prefix, from the middle of the key index
 *
 * Loading: 1M PUTs over HTTP would take longer than everything else in the
 * suite, so one zero-byte object is PUT through Talus (its row is exactly
 * what Talus writes) and then cloned under every key of the tree by one SQL
 * statement inside each database (SQLite: a recursive CTE through
 * better-sqlite3 on the server's meta.db while it runs, as a second
 * connection in WAL mode; PostgreSQL: generate_series, then ANALYZE), and
 * the template is deleted through S3 again. The rows are those of
 * unversioned zero-byte objects, inline data included, so every listed key
 * is also a readable object.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import postgres from 'postgres';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from '../../../test/helpers/postgres.ts';
import { assert } from '../../../src/util/assert.ts';
import type { Mode } from '../options.ts';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { clientFor, loadOn, measure, type DriverResult, type Row } from '../measure.ts';
import { closePresigner } from '../presign.ts';
import { startTalus, type RunningServer } from '../servers.ts';
import { ensureBucket } from '../setup.ts';

const BUCKET = 'scale-list';
const TEMPLATE_KEY = 'template-object';
const TREE = 'tree/';
const PAGE_KEYS = 1000;
/** Listings in flight in all (split over the nodes): one per core of the 2-core reference machine. */
const IN_FLIGHT = 2;
/** A realistic tree: a few hundred prefixes with many keys each. */
const PREFIXES: Record<Mode, number> = { smoke: 10, quick: 500, full: 500 };
/** Keys in the bucket: the 1M in quick mode too (both databases fill in 45 s on the loaded 2-core machine); smoke: 2000. */
const KEYS: Record<Mode, number> = { smoke: 2_000, quick: 1_000_000, full: 1_000_000 };
/** Longest timed cell: nine cells, and the suite stays lean. */
const CELL_MS_MAX = 5000;

interface Shape {
  name: string;
  prefix: string;
  expected: { keys: number; commonPrefixes: number };
}

function shapes(prefixes: number, keysPerPrefix: number): Shape[] {
  return [
    { name: 'root', prefix: '', expected: { keys: 0, commonPrefixes: 1 } },
    { name: 'prefixes', prefix: TREE, expected: { keys: 0, commonPrefixes: Math.min(PAGE_KEYS, prefixes) } },
    { name: 'keys', prefix: prefixName(Math.floor(prefixes / 2)), expected: { keys: Math.min(PAGE_KEYS, keysPerPrefix), commonPrefixes: 0 } },
  ];
}

function prefixName(index: number): string {
  return `${TREE}p-${String(index).padStart(4, '0')}/`;
}

/** Key i of the tree, as both databases' SQL below builds it. */
function treeKey(i: number, keysPerPrefix: number): string {
  return `${prefixName(Math.floor(i / keysPerPrefix))}${String(i % keysPerPrefix).padStart(8, '0')}`;
}

const VERSION_COLUMNS = 'bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta';
const TEMPLATE_COLUMNS = 't.bucket, %KEY%, t.version_id, t.is_latest, t.is_delete_marker, t.size_bytes, t.etag, t.last_modified_ms, t.owner_id, t.meta';

/** Clones the template's row (and its inline data) under `keys` keys, in one transaction of the server's own SQLite database. */
function cloneInSqlite(server: RunningServer, keys: number, keysPerPrefix: number): void {
  const db = new Database(join(server.directory, 'data', 'meta.db'));
  try {
    db.pragma('busy_timeout = 60000');
    db.transaction(() => {
      const { seq } = db.prepare('SELECT max(seq) AS seq FROM versions').get() as { seq: number };
      const key = `'${TREE}p-' || printf('%04d', i / ${keysPerPrefix}) || '/' || printf('%08d', i % ${keysPerPrefix})`;
      db.prepare(
        `INSERT INTO versions (${VERSION_COLUMNS}) WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${keys - 1}) ` +
          `SELECT ${TEMPLATE_COLUMNS.replace('%KEY%', key)} FROM n, versions t WHERE t.bucket = ? AND t.key = ?`,
      ).run(BUCKET, TEMPLATE_KEY);
      db.prepare('INSERT INTO inline_data (seq, data) SELECT v.seq, d.data FROM versions v, inline_data d, versions t WHERE v.seq > ? AND t.bucket = ? AND t.key = ? AND d.seq = t.seq').run(
        seq,
        BUCKET,
        TEMPLATE_KEY,
      );
    })();
  } finally {
    db.close();
  }
}

async function cloneInPostgres(url: string, keys: number, keysPerPrefix: number): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.begin(async (tx) => {
      const [{ seq }] = (await tx`SELECT max(seq) AS seq FROM versions`) as unknown as [{ seq: string }];
      const key = `'${TREE}p-' || lpad((i / ${keysPerPrefix})::text, 4, '0') || '/' || lpad((i % ${keysPerPrefix})::text, 8, '0')`;
      await tx.unsafe(
        `INSERT INTO versions (${VERSION_COLUMNS}) SELECT ${TEMPLATE_COLUMNS.replace('%KEY%', key)} FROM generate_series(0, ${keys - 1}) i, versions t WHERE t.bucket = $1 AND t.key = $2`,
        [BUCKET, TEMPLATE_KEY],
      );
      await tx.unsafe('INSERT INTO inline_data (seq, data) SELECT v.seq, d.data FROM versions v, inline_data d, versions t WHERE v.seq > $1 AND t.bucket = $2 AND t.key = $3 AND d.seq = t.seq', [
        seq,
        BUCKET,
        TEMPLATE_KEY,
      ]);
    });
    await sql`ANALYZE versions`;
    await sql`ANALYZE inline_data`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The template through S3, `clone` in the database, the template deleted through S3; returns the seconds the clone took. */
async function load(server: RunningServer, clone: () => Promise<void> | void): Promise<number> {
  await ensureBucket(server, BUCKET);
  const client = clientFor(server, 1);
  try {
    await client.putObject(BUCKET, TEMPLATE_KEY, Buffer.alloc(0));
    const started = performance.now();
    await clone();
    const seconds = (performance.now() - started) / 1000;
    await client.deleteObject(BUCKET, TEMPLATE_KEY);
    return seconds;
  } finally {
    await client.close();
  }
}

/** One untimed listing per shape checks the page, and that a cloned key reads back as an object. */
async function checkPages(server: RunningServer, list: readonly Shape[], keysPerPrefix: number): Promise<void> {
  const client = clientFor(server, 1);
  try {
    for (const shape of list) {
      const page = await client.listObjectsV2(BUCKET, { prefix: shape.prefix, delimiter: '/', maxKeys: PAGE_KEYS });
      if (page.keys.length !== shape.expected.keys || page.commonPrefixes.length !== shape.expected.commonPrefixes) {
        throw new Error(`${shape.name} page on ${server.label}: ${page.keys.length} keys and ${page.commonPrefixes.length} prefixes, expected ${shape.expected.keys} and ${shape.expected.commonPrefixes}`);
      }
    }
    const object = await client.getObject(BUCKET, treeKey(keysPerPrefix + 1, keysPerPrefix));
    assert(object.bytes === 0, 'a cloned key reads back as the zero-byte template');
  } finally {
    await client.close();
  }
}

async function listOnNodes(nodes: readonly RunningServer[], shape: Shape, ms: number): Promise<DriverResult> {
  const results = await Promise.all(
    nodes.map((node) =>
      loadOn(node, {
        bucket: BUCKET,
        workload: 'list',
        size: { min: 0, max: 0 },
        concurrency: IN_FLIGHT / nodes.length,
        durationMs: ms,
        keyPrefix: shape.prefix,
        prepare: false,
        list: { prefix: shape.prefix, delimiter: '/', maxKeys: PAGE_KEYS },
      }),
    ),
  );
  if (results.length === 1) return results[0]!;
  const mean = (pick: (result: DriverResult) => number): number => results.reduce((sum, result) => sum + pick(result), 0) / results.length;
  return {
    operations: results.reduce((sum, result) => sum + result.operations, 0),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    firstErrors: results.flatMap((result) => result.firstErrors).slice(0, 3),
    durationMs: Math.max(...results.map((result) => result.durationMs)),
    opsPerSecond: results.reduce((sum, result) => sum + result.opsPerSecond, 0),
    mibPerSecond: results.reduce((sum, result) => sum + result.mibPerSecond, 0),
    latencyMs: { p50: mean((result) => result.latencyMs.p50), p99: mean((result) => result.latencyMs.p99) },
  };
}

async function rowsFor(workload: string, nodes: readonly RunningServer[], label: string, list: readonly Shape[], ms: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const shape of list) {
    await listOnNodes(nodes, shape, Math.min(500, ms)); // warm-up: connections, JIT, caches
    const row = await measure(workload, nodes[0]!, 'loadgen', () => listOnNodes(nodes, shape, ms));
    rows.push({ ...row, label: `${label}: ${shape.name}` });
  }
  return rows;
}

async function stopAll(servers: readonly RunningServer[]): Promise<void> {
  for (const server of servers) {
    closePresigner(server);
    await server.stop();
  }
}

async function postgresRows(context: SuiteContext, workload: string, keys: number, keysPerPrefix: number, list: readonly Shape[], ms: number, notes: string[]): Promise<Row[]> {
  let database: TestPostgres | undefined;
  const rows: Row[] = [];
  try {
    database = await startTestPostgres();
    const url = database.url;
    // Nodes of one store share the key their access key secrets are sealed under; no [backends]: zero-byte objects are inline.
    const env = { TALUS_SECRET_KEY: Buffer.alloc(32, 3).toString('base64') };
    const args = ['--meta', url, '--config', await sharedConfig(context)];
    const first = await startTalus(1, { args, env, label: 'PostgreSQL, 1 node' });
    try {
      const seconds = await load(first, () => cloneInPostgres(url, keys, keysPerPrefix));
      notes.push(`PostgreSQL: ${keys} rows cloned in ${seconds.toFixed(1)} s (one INSERT … SELECT FROM generate_series, then ANALYZE)`);
      await checkPages(first, list, keysPerPrefix);
      rows.push(...(await rowsFor(workload, [first], 'PostgreSQL, 1 node', list, ms)));
      const second = await startTalus(1, { args, env, label: 'PostgreSQL, 2 nodes' });
      try {
        rows.push(...(await rowsFor(workload, [first, second], 'PostgreSQL, 2 nodes', list, ms)));
      } finally {
        await stopAll([second]);
      }
    } finally {
      await stopAll([first]);
    }
  } finally {
    await database?.stop();
  }
  return rows;
}

/** A node with --meta refuses the local blob store: a shared directory backend (unused: every object here is inline). */
async function sharedConfig(context: SuiteContext): Promise<string> {
  const directory = join(context.scratch, `scale-list-${Date.now().toString(36)}`);
  await mkdir(directory, { recursive: true });
  const path = join(directory, 'talus.toml');
  await writeFile(path, `[backends.shared]\ntype = "directory"\npath = "${join(directory, 'shared')}"\n\n[placements.one]\ntype = "single"\nbackend = "shared"\n\n[defaults]\nplacement = "one"\n`);
  return path;
}

export const scaleOutList1m: Workload = {
  id: 'scale-out-list-1m',
  title: `Scale-out: delimiter listings (pages of ${PAGE_KEYS}) of 1M keys, ${IN_FLIGHT} in flight — SQLite vs PostgreSQL, 1 and 2 nodes`,
  async run(context): Promise<WorkloadOutcome> {
    const keys = KEYS[context.settings.mode];
    const prefixes = PREFIXES[context.settings.mode];
    const keysPerPrefix = keys / prefixes;
    assert(Number.isInteger(keysPerPrefix), 'scale-out-list: keys divide evenly into the prefixes');
    const list = shapes(prefixes, keysPerPrefix);
    // Smoke mode keeps its short cells (the smoke test runs every workload); a measured cell lasts at least a second.
    const ms = Math.min(Math.max(context.settings.listRunMs, context.settings.mode === 'smoke' ? 0 : 1000), CELL_MS_MAX);
    const notes = [
      `${keys} keys ${TREE}p-NNNN/<8 digits>: ${prefixes} prefixes × ${keysPerPrefix} keys; pages: ` +
        `root (prefix '', delimiter '/': 1 common prefix over all keys), prefixes (prefix ${TREE}: ${list[1]!.expected.commonPrefixes} common prefixes), ` +
        `keys (prefix ${list[2]!.prefix}: ${list[2]!.expected.keys} keys)`,
      `load generator, ${IN_FLIGHT} listings in flight in all (one per node on two nodes), ${ms} ms per cell; two nodes: ops/s summed, p50/p99 the mean of the nodes', CPU and RSS of the first node only`,
    ];
    const rows: Row[] = [];
    const sqlite = await startTalus(1, { label: 'SQLite, 1 node' });
    try {
      const seconds = await load(sqlite, () => cloneInSqlite(sqlite, keys, keysPerPrefix));
      notes.push(`SQLite: ${keys} rows cloned in ${seconds.toFixed(1)} s (one INSERT … SELECT over a recursive CTE, a second connection to the running server's meta.db)`);
      await checkPages(sqlite, list, keysPerPrefix);
      rows.push(...(await rowsFor(this.id, [sqlite], 'SQLite, 1 node', list, ms)));
    } finally {
      await stopAll([sqlite]);
    }
    const missing = await postgresUnavailable();
    if (missing !== undefined) {
      notes.push(`PostgreSQL rows skipped: ${missing}`);
      return { rows, notes };
    }
    rows.push(...(await postgresRows(context, this.id, keys, keysPerPrefix, list, ms, notes)));
    notes.push('PostgreSQL 15, private (test/helpers/postgres.ts: initdb into a temporary directory, shared_buffers 32 MB, fsync off), on the same machine as the servers and the load generator');
    return { rows, notes };
  },
};
