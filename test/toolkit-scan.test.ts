/**
 * talus scan (src/scan, talus/scan): every object under a prefix with key,
 * size, ETag, last-modified, content type, user metadata and tags, in key
 * order, across listing pages. Against a real Talus: list mode (one-call
 * metadata listing), head mode (list + HEAD + GetObjectTagging) and auto
 * (which finds list) give the same answer. Against s3rver, which ignores
 * metadata=true: auto falls back to head; list refuses clearly. The CLI
 * writes JSONL / CSV to stdout and progress to stderr.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PutObjectTaggingCommand } from '@aws-sdk/client-s3';
import { S3Client } from '../src/client/s3-client.ts';
import { scanObjects, type ScannedObject, type ScanOptions, type ScanProgress } from '../src/public/scan.ts';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const CREDENTIALS = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
/** More than one listing page (1000 keys). */
const OBJECTS = 1050;
const keyOf = (i: number): string => `photos/${String(i).padStart(5, '0')}.jpg`;

async function collect(options: ScanOptions): Promise<ScannedObject[]> {
  const objects: ScannedObject[] = [];
  for await (const object of scanObjects(options)) objects.push(object);
  return objects;
}

async function populate(client: S3Client, bucket: string, count: number): Promise<void> {
  await client.createBucket(bucket);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < count; i = next++) {
        await client.putObject(bucket, keyOf(i), Buffer.from(`body ${i}`), { contentType: 'image/jpeg', metadata: { index: String(i), place: 'Zürich' } });
      }
    }),
  );
  await client.putObject(bucket, 'other/outside-the-prefix', Buffer.from('x'));
}

function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, 'scan', ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

describe('talus scan against Talus', () => {
  let talus: TestTalus;
  const bucket = 'scan-talus';

  before(async () => {
    talus = await startTestTalus();
    const client = new S3Client({ endpoint: talus.url, ...CREDENTIALS, connections: 16 });
    await populate(client, bucket, OBJECTS);
    await client.close();
    await talus.client.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: keyOf(7), Tagging: { TagSet: [{ Key: 'team', Value: 'blue sky' }, { Key: 'a&b', Value: '1=2' }] } }));
  });
  after(async () => {
    await talus.stop();
  });

  test('list, head and auto give every object under the prefix, in key order, with metadata and tags', async () => {
    const progress: ScanProgress[] = [];
    const base = { endpoint: talus.url, bucket, prefix: 'photos/', credentials: CREDENTIALS };
    const listed = await collect({ ...base, metadata: 'list' });
    const headed = await collect({ ...base, metadata: 'head', concurrency: 8 });
    const auto = await collect({ ...base, onProgress: (p) => progress.push(p) });
    assert.equal(listed.length, OBJECTS);
    assert.deepEqual(listed.map((object) => object.key), Array.from({ length: OBJECTS }, (_, i) => keyOf(i)));
    assert.deepEqual(headed, listed);
    assert.deepEqual(auto, listed);
    const seventh = listed[7]!;
    assert.equal(seventh.size, Buffer.byteLength('body 7'));
    assert.match(seventh.etag, /^[0-9a-f]{32}$/);
    assert.ok(!Number.isNaN(Date.parse(seventh.lastModified)));
    assert.equal(seventh.contentType, 'image/jpeg');
    assert.deepEqual(seventh.userMetadata, { index: '7', place: 'Zürich' });
    assert.deepEqual(seventh.tags, { team: 'blue sky', 'a&b': '1=2' });
    assert.deepEqual(listed[8]!.tags, {});
    const last = progress.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.mode, 'list', 'auto found the one-call listing');
    assert.equal(last.objects, OBJECTS);
    assert.equal(last.listed, OBJECTS);
  });

  test('head mode skips an object deleted between the listing and its HEAD', async () => {
    const live = 'scan-live';
    const client = new S3Client({ endpoint: talus.url, ...CREDENTIALS });
    try {
      await client.createBucket(live);
      for (let i = 0; i < 20; i++) await client.putObject(live, keyOf(i), Buffer.from('x'));
      const seen: string[] = [];
      for await (const object of scanObjects({ endpoint: talus.url, bucket: live, credentials: CREDENTIALS, metadata: 'head', concurrency: 1 })) {
        // Listed already (one page); with one HEAD at a time, key 15 is HEADed well after this.
        if (seen.length === 0) await client.deleteObject(live, keyOf(15));
        seen.push(object.key);
      }
      assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => keyOf(i)).filter((key) => key !== keyOf(15)));
    } finally {
      await client.close();
    }
  });

  test('none lists only', async () => {
    const objects = await collect({ endpoint: talus.url, bucket, prefix: 'other/', credentials: CREDENTIALS, metadata: 'none' });
    assert.deepEqual(objects.map((object) => Object.keys(object).sort()), [['etag', 'key', 'lastModified', 'size']]);
  });

  test('the CLI: JSONL and CSV to stdout, progress to stderr, credentials from the environment', async () => {
    const env = { AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY };
    const jsonl = await runCli([`s3://${bucket}/photos/`, '--endpoint', talus.url, '--metadata', 'head', '--concurrency', '16'], env);
    assert.equal(jsonl.code, 0, jsonl.stderr);
    const lines = jsonl.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as ScannedObject);
    assert.equal(lines.length, OBJECTS);
    assert.deepEqual(lines[7]!.tags, { team: 'blue sky', 'a&b': '1=2' });
    assert.match(jsonl.stderr, /scan: 1050 objects in [\d.]+ s, \d+ objects\/s \(metadata: head\), done/);

    const csv = await runCli([`s3://${bucket}/photos/00007`, '--endpoint', talus.url, '--format', 'csv', '--quiet'], env);
    assert.equal(csv.code, 0, csv.stderr);
    const [header, row, ...rest] = csv.stdout.trimEnd().split('\n');
    assert.equal(header, 'key,size,etag,last_modified,content_type,user_metadata,tags');
    assert.match(row!, /^photos\/00007\.jpg,6,[0-9a-f]{32},[^,]+,image\/jpeg,"\{""index"":""7"",""place"":""Zürich""\}","\{""team"":""blue sky"",""a&b"":""1=2""\}"$/);
    assert.deepEqual(rest, []);
    assert.equal(csv.stderr, '');
  });

  test('the CLI refuses bad usage and missing credentials', async () => {
    const usage = await runCli(['not-a-url', '--endpoint', talus.url]);
    assert.equal(usage.code, 2);
    const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...rest } = process.env;
    const noKeys = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', CLI, 'scan', `s3://${bucket}`, '--endpoint', talus.url], { cwd: PROJECT_ROOT, env: rest }, (error, _stdout, stderr) =>
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stderr }),
      );
    });
    assert.equal(noKeys.code, 1);
    assert.match(noKeys.stderr, /no credentials/);
  });
});

describe('talus scan against s3rver (no metadata=true listings)', () => {
  interface S3rverInstance {
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
  type S3rverConstructor = new (options: { port: number; address: string; directory: string; silent: boolean }) => S3rverInstance;
  let s3rver: S3rverInstance;
  let directory: string;
  let endpoint: string;
  const bucket = 'scan-s3rver';
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'talus-scan-s3rver-'));
    const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;
    s3rver = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true });
    endpoint = `http://127.0.0.1:${(await s3rver.run()).port}`;
    const client = new S3Client({ endpoint, ...credentials, connections: 8 });
    await client.createBucket(bucket);
    for (let i = 0; i < 12; i++) await client.putObject(bucket, keyOf(i), Buffer.from(`body ${i}`), { contentType: 'image/jpeg', metadata: { index: String(i) } });
    await client.close();
  });
  after(async () => {
    await s3rver.close();
    await rm(directory, { recursive: true, force: true });
  });

  test('auto falls back to head and still reads the metadata', async () => {
    const progress: ScanProgress[] = [];
    const objects = await collect({ endpoint, bucket, credentials, concurrency: 4, onProgress: (p) => progress.push(p) });
    assert.equal(progress.at(-1)!.mode, 'head');
    assert.equal(objects.length, 12);
    assert.deepEqual(objects[3]!.userMetadata, { index: '3' });
    assert.equal(objects[3]!.contentType, 'image/jpeg');
  });

  test('list mode says the server lacks metadata listings', async () => {
    await assert.rejects(collect({ endpoint, bucket, credentials, metadata: 'list' }), /does not support metadata=true listings/);
  });
});
