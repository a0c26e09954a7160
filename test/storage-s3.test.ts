/**
 * The ObjectStorage conformance suite over S3: against a real Talus server
 * on loopback (started in-process, port 0, temp directory), opened through
 * openStorage('s3://bucket/prefix'), and against s3rver, whose known
 * differences from S3 are named and skipped.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import type { ObjectStorage } from '../src/storage/object-storage.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { runConformance } from './helpers/storage-conformance.ts';
import { startBaseline, type RunningServer } from '../bench/suite/servers.ts';

const credentials = { accessKeyId: 'TALUSSTORAGEKEY', secretAccessKey: 'talus-storage-secret-0123456789' };
let root: string;
let talus: RunningTalus;
let talusStorage: ObjectStorage;
let s3rverStorage: ObjectStorage;

/** s3rver as the benchmark suite runs it: its own process, with OpenSSL's legacy provider so its listings can page. */
let s3rver: RunningServer;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-storage-s3-'));
  talus = await startTalus({ dataDir: join(root, 'talus'), port: 0, address: '127.0.0.1', rootAccessKeyId: credentials.accessKeyId, rootSecretAccessKey: credentials.secretAccessKey, logger: silentLogger });
  const admin = new S3Client({ endpoint: talus.url, ...credentials });
  await admin.createBucket('conformance');
  await admin.close();
  talusStorage = openStorage('s3://conformance/under/a/prefix', { endpoint: talus.url, credentials });

  s3rver = await startBaseline({ kind: 's3rver' });
  const s3rverAdmin = new S3Client({ endpoint: s3rver.endpoint, ...s3rver.credentials });
  await s3rverAdmin.createBucket('conformance');
  await s3rverAdmin.close();
  s3rverStorage = openStorage('s3://conformance', { endpoint: s3rver.endpoint, credentials: s3rver.credentials });
});

after(async () => {
  await talusStorage?.close();
  await s3rverStorage?.close();
  await talus?.close();
  await s3rver?.stop();
  await rm(root, { recursive: true, force: true });
});

runConformance({ name: 'Talus over S3 (s3://bucket/prefix)', storage: () => talusStorage });
runConformance({
  name: 's3rver',
  storage: () => s3rverStorage,
  differences: {
    'putIfAbsent creates once; then AlreadyExistsError and the object is unchanged': 's3rver ignores If-None-Match on PUT',
    'putIfAbsent racing itself: exactly one of many wins': 's3rver ignores If-None-Match on PUT',
    'putIfMatch replaces the version it names; a stale or missing one is PreconditionFailedError': 's3rver ignores If-Match on PUT',
    'multipart: a completion with ifNoneMatch fails on an existing key and leaves it unchanged': 's3rver ignores If-None-Match on CompleteMultipartUpload',
    'multipart: parts, listParts, complete into one object with a multipart ETag': 's3rver has no ListParts (405 MethodNotAllowed)',
    'multipart: a part below 5 MiB that is not the last is EntityTooSmall; abort drops the upload': 's3rver completes uploads with parts below 5 MiB (no EntityTooSmall)',
    'list in pages: a common prefix counts as one entry of a page': 's3rver counts only keys against max-keys, not common prefixes',
    'keys with dots, slashes, backslashes, spaces, percent signs and non-ASCII round-trip and list': "s3rver collapses '//' in keys ('a//b' is not found)",
  },
});
