/**
 * Real third-party clients against a real Talus.
 *
 * Goal: prove that the S3 clients people actually use — the AWS CLI (`aws s3`
 * and `aws s3api`), rclone, s3cmd, and curl with presigned URLs — work
 * unchanged against Talus, byte for byte. Method: start Talus in-process on a
 * loopback port, run each client's binary as a child process (no shell) with
 * an isolated environment (temporary HOME, explicit credentials, retries
 * disabled — or, for s3cmd, which cannot disable them, treated as a failure —
 * so a server error is not papered over, and a hard timeout so a hung client
 * fails instead of hanging), and check only observable outcomes: exit
 * codes, SHA-256 of downloaded bytes, the names and sizes a client lists, a
 * directory tree with nested and oddly named files synced up and back down,
 * the multipart ETag the server computed for a client's part size, and — with
 * the AWS SDK as an independent witness — what the server really stored and
 * that deleted buckets are gone. Presigned URLs made by `aws s3 presign` and by
 * @aws-sdk/s3-request-presigner are fetched with curl: they must return the
 * exact bytes, and a tampered or expired URL must get 403 with the S3 error
 * code in the XML body.
 */
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListBucketsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import {
  AWS,
  CURL,
  RCLONE,
  S3CMD,
  TREE_FILES,
  clientEnv,
  describeRun,
  hashTree,
  ok,
  rcloneEnv,
  run,
  sha256,
  sha256File,
  writeAwsConfig,
  writeS3cmdConfig,
  writeTree,
  type RunResult,
} from './helpers/clients.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const MiB = 1024 * 1024;
/** Not a multiple of any client's part size, so the last part is short. */
const BIG_SIZE = 17 * MiB + 4321;
const SMALL_SIZE = 1234;
const TEST_TIMEOUT_MS = 180_000;

type SdkError = Error & { $metadata?: { httpStatusCode?: number } };

/** The S3 multipart ETag for `data` uploaded in parts of `partSize` bytes. */
function multipartEtag(data: Buffer, partSize: number): string {
  const digests: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += partSize) digests.push(createHash('md5').update(data.subarray(offset, offset + partSize)).digest());
  return `"${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}"`;
}

function md5Etag(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`;
}

/** Everything a scenario needs to drive one client. */
interface ClientAdapter {
  name: string;
  /** The client's multipart part size for the 17 MiB file. */
  partSize: number;
  mb(bucket: string): Promise<RunResult>;
  put(localPath: string, bucket: string, key: string): Promise<RunResult>;
  get(bucket: string, key: string, localPath: string): Promise<RunResult>;
  /** The client's own listing of the bucket's top level: object name → size. */
  list(bucket: string): Promise<Map<string, number>>;
  /** Whether the client's bucket listing (ListBuckets) shows `bucket`. */
  listsBucket(bucket: string): Promise<boolean>;
  syncUp(localDir: string, bucket: string, prefix: string): Promise<RunResult>;
  syncDown(bucket: string, prefix: string, localDir: string): Promise<RunResult>;
  deleteAll(bucket: string): Promise<RunResult>;
  rb(bucket: string): Promise<RunResult>;
}

describe('real third-party clients', () => {
  let talus: TestTalus;
  let work: string;
  let home: string;
  let smallPath: string;
  let bigPath: string;
  let small: Buffer;
  let big: Buffer;
  let treeDir: string;
  let treeHashes: Map<string, { size: number; sha256: string }>;

  before(async () => {
    talus = await startTestTalus();
    work = await mkdtemp(join(tmpdir(), 'talus-clients-'));
    home = join(work, 'home');
    await mkdir(home, { recursive: true });
    await writeAwsConfig(home);
    small = randomBytes(SMALL_SIZE);
    big = randomBytes(BIG_SIZE);
    smallPath = join(work, 'small.txt');
    bigPath = join(work, 'big.bin');
    await writeFile(smallPath, small);
    await writeFile(bigPath, big);
    treeDir = join(work, 'tree');
    await writeTree(treeDir);
    treeHashes = await hashTree(treeDir);
    assert.equal(treeHashes.size, TREE_FILES.length);
  });

  after(async () => {
    await talus?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  async function sdkListing(bucket: string, prefix = ''): Promise<Map<string, number>> {
    const listed = new Map<string, number>();
    let token: string | undefined;
    do {
      const page = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const entry of page.Contents ?? []) listed.set(entry.Key!, entry.Size!);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return listed;
  }

  /** Registers the common round trip for one client; `extras` adds client-specific tests before the deletion step. */
  function clientScenario(adapter: () => ClientAdapter, extras?: (bucket: () => string) => void): void {
    let bucket = '';
    let client: ClientAdapter;
    let scratch = '';
    before(async () => {
      client = adapter();
      bucket = uniqueBucket(client.name);
      scratch = await mkdtemp(join(work, `${client.name}-`));
    });

    test('creates a bucket', { timeout: TEST_TIMEOUT_MS }, async () => {
      ok(await client.mb(bucket));
      await talus.client.send(new HeadBucketCommand({ Bucket: bucket }));
    });

    test('uploads a small file and a 17 MiB file in parts', { timeout: TEST_TIMEOUT_MS }, async () => {
      ok(await client.put(smallPath, bucket, 'small.txt'));
      ok(await client.put(bigPath, bucket, 'big.bin'));
      const smallHead = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small.txt' }));
      assert.equal(smallHead.ContentLength, SMALL_SIZE);
      assert.equal(smallHead.ETag, md5Etag(small), 'single-part upload: ETag is the MD5');
      const bigHead = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big.bin' }));
      assert.equal(bigHead.ContentLength, BIG_SIZE);
      assert.match(bigHead.ETag ?? '', /-\d+"$/, 'the 17 MiB file went up as a multipart upload');
      assert.equal(bigHead.ETag, multipartEtag(big, client.partSize), `multipart ETag for ${client.partSize}-byte parts`);
    });

    test('downloads both files byte for byte', { timeout: TEST_TIMEOUT_MS }, async () => {
      const smallOut = join(scratch, 'small.out');
      const bigOut = join(scratch, 'big.out');
      ok(await client.get(bucket, 'small.txt', smallOut));
      ok(await client.get(bucket, 'big.bin', bigOut));
      for (const path of [smallOut, bigOut]) assert.ok(existsSync(path), `${client.name} exited 0 but wrote no ${path}`);
      assert.equal(await sha256File(smallOut), sha256(small));
      assert.equal(await sha256File(bigOut), sha256(big));
    });

    test('lists the bucket and its objects with names and sizes', { timeout: TEST_TIMEOUT_MS }, async () => {
      assert.ok(await client.listsBucket(bucket), `${client.name} lists bucket ${bucket}`);
      assert.deepEqual(Object.fromEntries(await client.list(bucket)), { 'big.bin': BIG_SIZE, 'small.txt': SMALL_SIZE });
    });

    test('syncs a directory tree with odd names up and back down', { timeout: TEST_TIMEOUT_MS }, async () => {
      ok(await client.syncUp(treeDir, bucket, 'tree/'));
      const stored = await sdkListing(bucket, 'tree/');
      assert.deepEqual(
        Object.fromEntries(stored),
        Object.fromEntries([...treeHashes].map(([path, { size }]) => [`tree/${path}`, size])),
        'the server holds exactly the synced keys, with their sizes',
      );
      const down = join(scratch, 'down');
      await mkdir(down);
      ok(await client.syncDown(bucket, 'tree/', down));
      assert.deepEqual(Object.fromEntries(await hashTree(down)), Object.fromEntries(treeHashes));
    });

    extras?.(() => bucket);

    test('deletes every object, then the bucket', { timeout: TEST_TIMEOUT_MS }, async () => {
      ok(await client.deleteAll(bucket));
      assert.deepEqual(Object.fromEntries(await sdkListing(bucket)), {}, 'no object is left');
      ok(await client.rb(bucket));
      await assert.rejects(talus.client.send(new HeadBucketCommand({ Bucket: bucket })), (error: SdkError) => {
        assert.equal(error.$metadata?.httpStatusCode, 404, `${error.name}: ${error.message}`);
        return true;
      });
      const buckets = await talus.client.send(new ListBucketsCommand({}));
      assert.ok(!(buckets.Buckets ?? []).some((entry) => entry.Name === bucket), 'ListBuckets no longer shows the bucket');
    });
  }

  describe('aws cli', () => {
    let env: NodeJS.ProcessEnv;
    const aws = (...args: string[]): Promise<RunResult> => run(AWS, ['--endpoint-url', talus.url, ...args], env);
    before(() => {
      env = clientEnv(home, { AWS_MAX_ATTEMPTS: '1', AWS_RETRY_MODE: 'standard' });
    });

    clientScenario(
      () => ({
        name: 'aws',
        partSize: 8 * MiB,
        mb: (bucket) => aws('s3', 'mb', `s3://${bucket}`),
        put: (local, bucket, key) => aws('s3', 'cp', '--only-show-errors', local, `s3://${bucket}/${key}`),
        get: (bucket, key, local) => aws('s3', 'cp', '--only-show-errors', `s3://${bucket}/${key}`, local),
        async list(bucket) {
          const result = ok(await aws('s3', 'ls', `s3://${bucket}/`));
          const listed = new Map<string, number>();
          for (const line of result.stdout.split('\n')) {
            const match = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+(\d+) (.+)$/.exec(line);
            if (match !== null) listed.set(match[2]!, Number(match[1]));
          }
          return listed;
        },
        async listsBucket(bucket) {
          const result = ok(await aws('s3', 'ls'));
          return result.stdout.split('\n').some((line) => line.endsWith(` ${bucket}`));
        },
        syncUp: (local, bucket, prefix) => aws('s3', 'sync', '--only-show-errors', local, `s3://${bucket}/${prefix}`),
        syncDown: (bucket, prefix, local) => aws('s3', 'sync', '--only-show-errors', `s3://${bucket}/${prefix}`, local),
        deleteAll: (bucket) => aws('s3', 'rm', '--only-show-errors', '--recursive', `s3://${bucket}`),
        rb: (bucket) => aws('s3', 'rb', `s3://${bucket}`),
      }),
      (bucket) => {
        test('s3api: head-bucket, put-object, head-object, ranged get-object, list-objects-v2, delete-object', { timeout: TEST_TIMEOUT_MS }, async () => {
          const key = 'api/odd key+ü&=.txt';
          ok(await aws('s3api', 'head-bucket', '--bucket', bucket()));
          const put = JSON.parse(ok(await aws('s3api', 'put-object', '--bucket', bucket(), '--key', key, '--body', smallPath, '--content-type', 'text/x-talus', '--metadata', 'color=blue')).stdout) as { ETag?: string };
          assert.equal(put.ETag, md5Etag(small));
          const head = JSON.parse(ok(await aws('s3api', 'head-object', '--bucket', bucket(), '--key', key)).stdout) as {
            ContentLength?: number;
            ETag?: string;
            ContentType?: string;
            Metadata?: Record<string, string>;
          };
          assert.equal(head.ContentLength, SMALL_SIZE);
          assert.equal(head.ETag, md5Etag(small));
          assert.equal(head.ContentType, 'text/x-talus');
          assert.deepEqual(head.Metadata, { color: 'blue' });
          const rangeOut = join(work, `range-${bucket()}.out`);
          const ranged = JSON.parse(ok(await aws('s3api', 'get-object', '--bucket', bucket(), '--key', 'big.bin', '--range', 'bytes=8388600-8388707', rangeOut)).stdout) as {
            ContentLength?: number;
            ContentRange?: string;
          };
          assert.equal(ranged.ContentLength, 108);
          assert.equal(ranged.ContentRange, `bytes 8388600-8388707/${BIG_SIZE}`);
          assert.ok((await readFile(rangeOut)).equals(big.subarray(8388600, 8388708)), 'the range straddles a part boundary and is exact');
          const listed = JSON.parse(ok(await aws('s3api', 'list-objects-v2', '--no-paginate', '--bucket', bucket(), '--prefix', 'api/')).stdout) as {
            KeyCount?: number;
            Contents?: { Key: string; Size: number }[];
          };
          assert.equal(listed.KeyCount, 1);
          assert.deepEqual(listed.Contents?.map(({ Key, Size }) => ({ Key, Size })), [{ Key: key, Size: SMALL_SIZE }]);
          ok(await aws('s3api', 'delete-object', '--bucket', bucket(), '--key', key));
          const missing = await aws('s3api', 'head-object', '--bucket', bucket(), '--key', key);
          assert.notEqual(missing.code, 0, describeRun(missing));
          assert.match(missing.stderr, /404|Not Found/, describeRun(missing));
        });
      },
    );
  });

  describe('rclone', () => {
    let env: NodeJS.ProcessEnv;
    const rclone = (...args: string[]): Promise<RunResult> =>
      run(RCLONE, ['--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M', '--retries', '1', '--low-level-retries', '1', '--stats', '0', ...args], env);
    before(() => {
      env = rcloneEnv(home, talus.url);
    });

    clientScenario(
      () => ({
        name: 'rclone',
        partSize: 5 * MiB,
        mb: (bucket) => rclone('mkdir', `talus:${bucket}`),
        put: (local, bucket, key) => rclone('copyto', local, `talus:${bucket}/${key}`),
        get: (bucket, key, local) => rclone('copyto', `talus:${bucket}/${key}`, local),
        async list(bucket) {
          const entries = JSON.parse(ok(await rclone('lsjson', `talus:${bucket}`)).stdout) as { Path: string; Size: number; IsDir: boolean }[];
          // `rclone ls` is recursive; at this point the bucket holds only top-level objects, so both must agree.
          const lines = ok(await rclone('ls', `talus:${bucket}`)).stdout.split('\n').filter((line) => line.trim() !== '');
          const fromLs = new Map(lines.map((line) => {
            const match = /^\s*(\d+) (.+)$/.exec(line);
            assert.ok(match !== null, `unexpected rclone ls line: ${line}`);
            return [match[2]!, Number(match[1])] as const;
          }));
          const fromJson = new Map(entries.filter((entry) => !entry.IsDir).map((entry) => [entry.Path, entry.Size] as const));
          assert.deepEqual(Object.fromEntries(fromLs), Object.fromEntries(fromJson), 'rclone ls and lsjson agree');
          return fromJson;
        },
        async listsBucket(bucket) {
          const entries = JSON.parse(ok(await rclone('lsjson', 'talus:')).stdout) as { Path: string; IsDir: boolean }[];
          return entries.some((entry) => entry.IsDir && entry.Path === bucket);
        },
        syncUp: (local, bucket, prefix) => rclone('sync', local, `talus:${bucket}/${prefix}`),
        syncDown: (bucket, prefix, local) => rclone('sync', `talus:${bucket}/${prefix}`, local),
        deleteAll: (bucket) => rclone('delete', `talus:${bucket}`),
        rb: (bucket) => rclone('rmdir', `talus:${bucket}`),
      }),
      (bucket) => {
        test('rclone check finds the synced tree identical (MD5 against ETags)', { timeout: TEST_TIMEOUT_MS }, async () => {
          ok(await rclone('check', treeDir, `talus:${bucket()}/tree`));
        });
      },
    );
  });

  describe('s3cmd', () => {
    let env: NodeJS.ProcessEnv;
    let config: string;
    /** s3cmd retries failed requests (up to 5 times, not configurable): a retry means the server failed a request. */
    const s3cmd = async (...args: string[]): Promise<RunResult> => {
      const result = await run(S3CMD, ['-c', config, ...args], env);
      assert.doesNotMatch(result.stderr, /Retrying/i, describeRun(result));
      return result;
    };
    before(async () => {
      env = clientEnv(home);
      config = await writeS3cmdConfig(work, new URL(talus.url).host);
    });

    clientScenario(() => ({
      name: 's3cmd',
      partSize: 5 * MiB,
      mb: (bucket) => s3cmd('mb', `s3://${bucket}`),
      put: (local, bucket, key) => s3cmd('put', local, `s3://${bucket}/${key}`),
      get: (bucket, key, local) => s3cmd('get', '--force', `s3://${bucket}/${key}`, local),
      async list(bucket) {
        const result = ok(await s3cmd('ls', `s3://${bucket}/`));
        const listed = new Map<string, number>();
        const prefix = `s3://${bucket}/`;
        for (const line of result.stdout.split('\n')) {
          const match = /^\d{4}-\d\d-\d\d \d\d:\d\d\s+(\d+)\s+(s3:\/\/.+)$/.exec(line);
          if (match !== null && match[2]!.startsWith(prefix)) listed.set(match[2]!.slice(prefix.length), Number(match[1]));
        }
        return listed;
      },
      async listsBucket(bucket) {
        const result = ok(await s3cmd('ls'));
        return result.stdout.split('\n').some((line) => line.endsWith(`s3://${bucket}`));
      },
      syncUp: (local, bucket, prefix) => s3cmd('sync', `${local}/`, `s3://${bucket}/${prefix}`),
      syncDown: (bucket, prefix, local) => s3cmd('sync', `s3://${bucket}/${prefix}`, `${local}/`),
      deleteAll: (bucket) => s3cmd('del', '--recursive', '--force', `s3://${bucket}/`),
      rb: (bucket) => s3cmd('rb', `s3://${bucket}`),
    }));
  });

  describe('presigned URLs fetched with curl', () => {
    let env: NodeJS.ProcessEnv;
    let bucket: string;
    const objects = new Map<string, Buffer>([
      ['presign/plain.bin', randomBytes(256 * 1024 + 3)],
      ['presign/odd name+ü&=(1).bin', randomBytes(4096)],
    ]);
    const aws = (...args: string[]): Promise<RunResult> => run(AWS, ['--endpoint-url', talus.url, ...args], env);
    const curlBase = ['-sS', '-g', '--noproxy', '*', '--max-time', '60'];

    before(async () => {
      env = clientEnv(home, { AWS_MAX_ATTEMPTS: '1' });
      bucket = uniqueBucket('presign');
      await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
      for (const [key, body] of objects) await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    });

    async function awsPresign(key: string, expiresIn: number): Promise<string> {
      const url = ok(await aws('s3', 'presign', `s3://${bucket}/${key}`, '--expires-in', String(expiresIn))).stdout.trim();
      assert.match(url, /X-Amz-Signature=[0-9a-f]{64}/, `aws s3 presign printed a SigV4 URL: ${url}`);
      return url;
    }

    function sdkPresign(key: string, expiresIn: number): Promise<string> {
      return getSignedUrl(talus.client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn });
    }

    /** `curl -f` must succeed and write exactly the object's bytes. */
    async function assertFetches(url: string, expected: Buffer): Promise<void> {
      const out = join(work, `curl-${randomBytes(6).toString('hex')}.out`);
      ok(await run(CURL, [...curlBase, '-f', '-o', out, url], env));
      const got = await readFile(out);
      assert.equal(got.length, expected.length, `size of ${url}`);
      assert.equal(sha256(got), sha256(expected), `bytes of ${url}`);
    }

    /** curl must get `status` with an S3 XML error naming `code`; `curl -f` must fail (exit 22). */
    async function assertRefused(url: string, status: number, code: string): Promise<void> {
      const out = join(work, `curl-${randomBytes(6).toString('hex')}.err`);
      const result = ok(await run(CURL, [...curlBase, '-o', out, '-w', '%{http_code}', url], env));
      const body = await readFile(out, 'utf8');
      assert.equal(result.stdout, String(status), `HTTP status for ${url}; body: ${body}`);
      assert.match(body, new RegExp(`<Error>[\\s\\S]*<Code>${code}</Code>`), `error body for ${url}`);
      const failing = await run(CURL, [...curlBase, '-f', '-o', '/dev/null', url], env);
      assert.equal(failing.code, 22, describeRun(failing));
      assert.match(failing.stderr, new RegExp(`${status}`), describeRun(failing));
    }

    function tamperSignature(url: string): string {
      const signature = new URL(url).searchParams.get('X-Amz-Signature');
      assert.ok(signature !== null && /^[0-9a-f]{64}$/.test(signature), `signature in ${url}`);
      const flipped = signature.slice(0, -1) + (signature.endsWith('0') ? '1' : '0');
      return url.replace(`X-Amz-Signature=${signature}`, `X-Amz-Signature=${flipped}`);
    }

    test('aws s3 presign: curl gets the exact bytes', { timeout: TEST_TIMEOUT_MS }, async () => {
      for (const [key, body] of objects) await assertFetches(await awsPresign(key, 300), body);
    });

    test('@aws-sdk/s3-request-presigner: curl gets the exact bytes', { timeout: TEST_TIMEOUT_MS }, async () => {
      for (const [key, body] of objects) await assertFetches(await sdkPresign(key, 300), body);
    });

    test('a tampered signature gets 403 SignatureDoesNotMatch', { timeout: TEST_TIMEOUT_MS }, async () => {
      for (const [key] of objects) {
        await assertRefused(tamperSignature(await awsPresign(key, 300)), 403, 'SignatureDoesNotMatch');
        await assertRefused(tamperSignature(await sdkPresign(key, 300)), 403, 'SignatureDoesNotMatch');
      }
    });

    test('a valid signature reused for another key or a longer expiry gets 403 SignatureDoesNotMatch', { timeout: TEST_TIMEOUT_MS }, async () => {
      const url = await awsPresign('presign/plain.bin', 300);
      const otherKey = url.replace('/presign/plain.bin?', '/presign/odd%20name%2B%C3%BC%26%3D%281%29.bin?');
      assert.notEqual(otherKey, url);
      await assertRefused(otherKey, 403, 'SignatureDoesNotMatch');
      assert.match(url, /X-Amz-Expires=300(&|$)/);
      await assertRefused(url.replace('X-Amz-Expires=300', 'X-Amz-Expires=600'), 403, 'SignatureDoesNotMatch');
    });

    test('an expired URL gets 403 AccessDenied', { timeout: TEST_TIMEOUT_MS }, async () => {
      const urls = [await awsPresign('presign/plain.bin', 1), await sdkPresign('presign/plain.bin', 1)];
      await sleep(2_100);
      for (const url of urls) await assertRefused(url, 403, 'AccessDenied');
    });
  });
});
