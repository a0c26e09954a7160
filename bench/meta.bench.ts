/**
 * The embedded metadata store on this machine: durable commits per second
 * (WAL + synchronous=FULL, one transaction per commit, as PutObject does),
 * point lookups per second, and a 1000-entry listing page. Run:
 *   node --import tsx bench/meta.bench.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion } from '../src/meta/types.ts';
import { newBlobId } from '../src/util/ids.ts';

const COMMITS = 3_000;
const LOOKUPS = 100_000;

function version(key: string): ObjectVersion {
  return {
    bucket: 'bench', key, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: 4096,
    etag: 'd41d8cd98f00b204e9800998ecf8427e', ownerId: 'owner', system: { contentType: 'application/octet-stream' },
    userMetadata: { a: '1' }, checksum: null, tags: [], parts: null, segments: [{ blobId: newBlobId(), sizeBytes: 4096 }],
  };
}

const directory = await mkdtemp(join(tmpdir(), 'talus-meta-bench-'));
const store = new SqliteMetadataStore(join(directory, 'meta.db'));
await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
let start = performance.now();
for (let i = 0; i < COMMITS; i++) await store.commitVersion({ version: version(`key/${String(i).padStart(7, '0')}`), conditions: {} });
const commitSeconds = (performance.now() - start) / 1000;
start = performance.now();
for (let i = 0; i < LOOKUPS; i++) await store.getVersion('bench', `key/${String(i % COMMITS).padStart(7, '0')}`);
const lookupSeconds = (performance.now() - start) / 1000;
start = performance.now();
const pages = 50;
for (let i = 0; i < pages; i++) await store.list({ bucket: 'bench', prefix: '', delimiter: '', after: '', limit: 1000 });
const pageMs = (performance.now() - start) / pages;
console.log(`durable commits: ${(COMMITS / commitSeconds).toFixed(0)}/s (one fsync'd transaction each)`);
console.log(`point lookups:   ${(LOOKUPS / lookupSeconds).toFixed(0)}/s`);
console.log(`list 1000 keys:  ${pageMs.toFixed(2)} ms per page`);
await store.close();
await rm(directory, { recursive: true, force: true });
