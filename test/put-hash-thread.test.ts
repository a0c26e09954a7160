/**
 * The hashes of a PUT body, above and below the size at which they move to
 * the hash thread (util/hash-thread.ts): the ETag (MD5), a SHA-1/SHA-256/
 * CRC64NVME additional checksum computed in the same thread session, and the signed
 * payload's SHA-256. Each is right, and each refusal (Content-MD5,
 * x-amz-checksum-*, x-amz-content-sha256) answers its S3 error and leaves
 * neither an object nor a blob file behind. Multipart parts take the same
 * path.
 */
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { computeChecksum } from '../src/util/checksum.ts';
import { createStreamHashes, INLINE_BELOW_BYTES } from '../src/util/hash-thread.ts';
import { errorCode, type RawResponse, send, signedRequest, signRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const KiB = 1024;
/** Below the threshold (hashed inline) and well above it (hashed on the thread, several batches). */
const SIZES = [4 * KiB, INLINE_BELOW_BYTES + 2 * 512 * KiB + 12_345] as const;
const BLOB_ID = /^[0-9a-z]{9}[0-9a-f]{20}$/;

type Algorithm = 'md5' | 'sha1' | 'sha256' | 'crc64nvme';

function digest(algorithm: Algorithm, data: Buffer): Buffer {
  return algorithm === 'crc64nvme' ? computeChecksum('CRC64NVME', data) : createHash(algorithm).update(data).digest();
}

async function blobFiles(root: string): Promise<number> {
  let count = 0;
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) if (entry.isFile() && BLOB_ID.test(entry.name)) count++;
  return count;
}

test('one thread session computes several digests of the same bytes, however chunked; CRC64 sessions interleave', async () => {
  const algorithms: Algorithm[] = ['md5', 'sha256', 'sha1', 'crc64nvme'];
  const bodies = [randomBytes(3 * INLINE_BELOW_BYTES + 777), randomBytes(2 * INLINE_BELOW_BYTES + 5)];
  for (const declared of ['exact', 'short'] as const) {
    // Two bodies at once, chunk by chunk in turn: the thread's one CRC64 instance switches between their states.
    const sessions = bodies.map((body) => createStreamHashes(algorithms, declared === 'exact' ? body.length : 100));
    for (let offset = 0; offset < bodies[0]!.length; offset += 65_537) {
      for (const [index, body] of bodies.entries()) {
        if (offset >= body.length) continue;
        const behind = sessions[index]!.update(body.subarray(offset, offset + 65_537));
        if (behind !== undefined) await behind;
      }
    }
    for (const [index, body] of bodies.entries()) {
      const digests = await sessions[index]!.digest();
      for (const [position, algorithm] of algorithms.entries()) assert.ok(digests[position]!.equals(digest(algorithm, body)), `${algorithm}, body ${index}, declared ${declared}`);
    }
  }
});

describe('PUT hashes on and off the hash thread', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket('hashthread');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await talus.stop();
  });

  for (const size of SIZES) {
    test(`${size} bytes: ETag, Content-MD5, SHA-256 payload and SHA-1/SHA-256 checksums are right`, async () => {
      for (const algorithm of ['sha1', 'sha256', 'crc64nvme'] as const) {
        const body = randomBytes(size);
        const key = `right/${size}/${algorithm}`;
        const checksum = digest(algorithm, body).toString('base64');
        // Signed payload (the signer puts the body's SHA-256 in x-amz-content-sha256), Content-MD5 and a checksum at once.
        const response = await signedRequest(talus.url, {
          method: 'PUT',
          path: `/${bucket}/${key}`,
          body,
          headers: { 'content-md5': digest('md5', body).toString('base64'), [`x-amz-checksum-${algorithm}`]: checksum },
        });
        assert.equal(response.status, 200, response.body);
        assert.equal(response.headers.etag, `"${digest('md5', body).toString('hex')}"`);
        assert.equal(response.headers[`x-amz-checksum-${algorithm}`], checksum);
        const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
        assert.equal(head.ContentLength, size);
        assert.equal({ sha1: head.ChecksumSHA1, sha256: head.ChecksumSHA256, crc64nvme: head.ChecksumCRC64NVME }[algorithm], checksum);
      }
    });

    test(`${size} bytes: a wrong Content-MD5, checksum or payload SHA-256 is refused and leaves nothing`, async () => {
      const body = randomBytes(size);
      const other = Buffer.from(body);
      other[other.length >> 1] = other[other.length >> 1]! ^ 0xff;
      const filesBefore = await blobFiles(talus.dataDir);
      const cases: { name: string; response: () => Promise<RawResponse>; code: string }[] = [
        {
          name: 'content-md5',
          code: 'BadDigest',
          response: () => signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/wrong/${size}/content-md5`, body, unsignedPayload: true, headers: { 'content-md5': digest('md5', other).toString('base64') } }),
        },
        {
          name: 'checksum-sha256',
          code: 'BadDigest',
          response: () => signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/wrong/${size}/checksum-sha256`, body, unsignedPayload: true, headers: { 'x-amz-checksum-sha256': digest('sha256', other).toString('base64') } }),
        },
        {
          name: 'checksum-sha1',
          code: 'BadDigest',
          response: () => signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/wrong/${size}/checksum-sha1`, body, headers: { 'x-amz-checksum-sha1': digest('sha1', other).toString('base64') } }),
        },
        {
          name: 'checksum-crc64nvme',
          code: 'BadDigest',
          response: () => signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/wrong/${size}/checksum-crc64nvme`, body, unsignedPayload: true, headers: { 'x-amz-checksum-crc64nvme': digest('crc64nvme', other).toString('base64') } }),
        },
        {
          name: 'payload-sha256',
          code: 'XAmzContentSHA256Mismatch',
          // Signed over `body`, then `other` (same length, one byte changed) is sent.
          response: async () => {
            const path = `/${bucket}/wrong/${size}/payload-sha256`;
            return send(talus.url, 'PUT', path, await signRequest(talus.url, { method: 'PUT', path, body }), other);
          },
        },
      ];
      for (const wrong of cases) {
        const response = await wrong.response();
        assert.equal(response.status, 400, `${wrong.name}: ${response.body}`);
        assert.equal(errorCode(response), wrong.code, wrong.name);
        await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `wrong/${size}/${wrong.name}` })), wrong.name);
      }
      assert.equal(await blobFiles(talus.dataDir), filesBefore, 'no blob file is left by a refused body');
    });
  }

  test('multipart, CRC64NVME FULL_OBJECT: part checksums on the thread combine into the whole object\'s', async () => {
    const key = 'multipart/crc64nvme';
    const created = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: 'CRC64NVME', ChecksumType: 'FULL_OBJECT' }));
    const parts = [randomBytes(5 * 1024 * KiB), randomBytes(SIZES[1])];
    const completed: { PartNumber: number; ETag: string; ChecksumCRC64NVME: string }[] = [];
    for (const [index, body] of parts.entries()) {
      const part = await talus.client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: index + 1, Body: body, ChecksumCRC64NVME: digest('crc64nvme', body).toString('base64') }),
      );
      assert.equal(part.ChecksumCRC64NVME, digest('crc64nvme', body).toString('base64'));
      completed.push({ PartNumber: index + 1, ETag: part.ETag!, ChecksumCRC64NVME: part.ChecksumCRC64NVME! });
    }
    await talus.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, MultipartUpload: { Parts: completed } }));
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
    assert.equal(head.ChecksumCRC64NVME, digest('crc64nvme', Buffer.concat(parts)).toString('base64'));
  });

  test('multipart parts above the threshold: SHA-256 part checksums right, a wrong one refused', async () => {
    const key = 'multipart/sha256';
    const created = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: 'SHA256' }));
    // Every part but the last is at least 5 MiB, as on AWS.
    const parts = [randomBytes(5 * 1024 * KiB), randomBytes(SIZES[1] + 1)];
    const completed: { PartNumber: number; ETag: string; ChecksumSHA256: string }[] = [];
    for (const [index, body] of parts.entries()) {
      const part = await talus.client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: index + 1, Body: body, ChecksumSHA256: digest('sha256', body).toString('base64') }),
      );
      assert.equal(part.ETag, `"${digest('md5', body).toString('hex')}"`);
      assert.equal(part.ChecksumSHA256, digest('sha256', body).toString('base64'));
      completed.push({ PartNumber: index + 1, ETag: part.ETag!, ChecksumSHA256: part.ChecksumSHA256! });
    }
    const filesBefore = await blobFiles(talus.dataDir);
    const refused = await signedRequest(talus.url, {
      method: 'PUT',
      path: `/${bucket}/${key}`,
      query: { partNumber: '3', uploadId: created.UploadId! },
      body: parts[0],
      unsignedPayload: true,
      headers: { 'x-amz-checksum-sha256': digest('sha256', parts[1]!).toString('base64') },
    });
    assert.equal(refused.status, 400, refused.body);
    assert.equal(errorCode(refused), 'BadDigest');
    assert.equal(await blobFiles(talus.dataDir), filesBefore, 'the refused part left no blob file');
    await talus.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, MultipartUpload: { Parts: completed } }));
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    assert.equal(head.ContentLength, parts[0]!.length + parts[1]!.length);
  });
});

/**
 * A request refused before its body is read (a quota, a condition) leaves
 * its payload verifier unread and undestroyed: that must neither keep the
 * hash thread referenced (the process would never exit: test/admin-quota
 * hung this way) nor hold a thread session. The verifier opens its session
 * at the first byte.
 */
test('an unread long signed body holds no hash thread session: the process exits', async () => {
  const { execFile } = await import('node:child_process');
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const src = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);
  const dir = await mkdtemp(join(tmpdir(), 'talus-unread-body-'));
  const scriptPath = join(dir, 'unread.mts');
  await writeFile(
    scriptPath,
    `import { PlainBodyVerifier } from ${src('../src/auth/payload.ts')};
import { createStreamHash } from ${src('../src/util/hash-thread.ts')};
const long = ${INLINE_BELOW_BYTES} * 2;
for (let i = 0; i < 3; i++) new PlainBodyVerifier('ab'.repeat(32), long);
// One used and finished session, so the thread exists and must be unreferenced again.
const hash = createStreamHash('sha256', long);
await hash.update(Buffer.alloc(long));
await hash.digest();
console.log('done');
`,
  );
  const started = Date.now();
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', scriptPath], { timeout: 60_000 }, (error, out) => (error ? reject(error) : resolve(out)));
  }).finally(() => rm(dir, { recursive: true, force: true }));
  assert.equal(stdout.trim(), 'done');
  assert.ok(Date.now() - started < 60_000, 'the process exited on its own');
});

/**
 * A long signed PUT refused before its handler reads the body (anonymous →
 * AccessDenied): node has already pushed its first chunks into the payload
 * verifier, so the verifier's hash thread session is open. The answered
 * request must give it back (src/auth/payload.ts releaseFeed): an open
 * session holds write budget and the hash thread's reference, and 4096 of
 * them would exhaust the thread's sessions for every later large PUT.
 * Found by review (s6-put).
 */
test('a refused long signed PUT gives its hash session and write budget back', async () => {
  const { processWriteBudget } = await import('../src/util/byte-budget.ts');
  const { send } = await import('./helpers/raw.ts');
  const talus = await startTestTalus();
  try {
    const bucket = uniqueBucket('refused');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    const body = Buffer.alloc(2 * INLINE_BELOW_BYTES, 7);
    const sha = createHash('sha256').update(body).digest('hex');
    const before = processWriteBudget.heldBytes;
    for (let i = 0; i < 5; i++) {
      const response = await send(talus.url, 'PUT', `/${bucket}/key-${i}`, { 'content-length': String(body.length), 'x-amz-content-sha256': sha }, body);
      assert.equal(response.status, 403);
    }
    let held = processWriteBudget.heldBytes;
    for (let waited = 0; held !== before && waited < 5_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      held = processWriteBudget.heldBytes;
    }
    assert.equal(held, before, 'no write budget held by refused requests');
  } finally {
    await talus.stop();
  }
});
