/**
 * talus scan for a caller that may list a bucket but read only some of its
 * objects (a user granted s3:ListBucket and s3:GetObject on open/* by bucket
 * policy): in every mode the scan yields every listed object, those it may
 * read with their metadata, the others as the listing shows them (a denied
 * HEAD is not an error). In auto mode a first page without any readable
 * object does not make the scan take Talus for a server without
 * metadata=true listings.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { S3Client } from '../src/client/s3-client.ts';
import { scanObjects, type MetadataMode, type ScannedObject, type ScanProgress } from '../src/public/scan.ts';
import { parseCredentials, talusCli } from './helpers/principals.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const BUCKET = 'scan-denied';
const CLOSED = ['closed/1', 'closed/2', 'closed/3'];
const OPEN = ['open/1', 'open/2'];

describe('talus scan by a caller who may list but not read some keys', () => {
  let talus: TestTalus;
  let bob: { accessKeyId: string; secretAccessKey: string };
  let readsNothing: { accessKeyId: string; secretAccessKey: string };

  before(async () => {
    talus = await startTestTalus();
    const root = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    await root.createBucket(BUCKET);
    for (const key of [...CLOSED, ...OPEN]) await root.putObject(BUCKET, key, Buffer.from(key), { contentType: 'text/plain', metadata: { origin: key } });
    await root.close();
    bob = parseCredentials(await talusCli(['users', 'add', 'bob', talus.dataDir]));
    readsNothing = parseCredentials(await talusCli(['users', 'add', 'carol', talus.dataDir]));
    const policy = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: ['arn:aws:iam:::user/bob', 'arn:aws:iam:::user/carol'] }, Action: 's3:ListBucket', Resource: `arn:aws:s3:::${BUCKET}` },
        { Effect: 'Allow', Principal: { AWS: 'arn:aws:iam:::user/bob' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/open/*` },
      ],
    };
    await talus.client.send(new PutBucketPolicyCommand({ Bucket: BUCKET, Policy: JSON.stringify(policy) }));
  });
  after(async () => {
    await talus.stop();
  });

  async function scan(credentials: { accessKeyId: string; secretAccessKey: string }, metadata: MetadataMode): Promise<{ objects: ScannedObject[]; progress: ScanProgress[] }> {
    const objects: ScannedObject[] = [];
    const progress: ScanProgress[] = [];
    // New users' keys reach the server's key cache within its reload period: retry an unknown key for a while.
    for (let attempt = 0; ; attempt++) {
      try {
        for await (const object of scanObjects({ endpoint: talus.url, bucket: BUCKET, credentials, metadata, onProgress: (p) => progress.push(p) })) objects.push(object);
        return { objects, progress };
      } catch (error) {
        if (attempt >= 30 || objects.length > 0 || !/InvalidAccessKeyId/.test(String((error as Error).message) + String((error as { code?: string }).code))) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  for (const mode of ['head', 'list', 'auto'] as const) {
    test(`${mode} mode: readable objects with metadata, denied ones as listed, every one counted`, async () => {
      const { objects, progress } = await scan(bob, mode);
      assert.deepEqual(objects.map((object) => object.key), [...CLOSED, ...OPEN]);
      for (const object of objects) {
        if (object.key.startsWith('open/')) {
          assert.equal(object.contentType, 'text/plain', object.key);
          assert.deepEqual(object.userMetadata, { origin: object.key });
        } else {
          assert.deepEqual(Object.keys(object).sort(), ['etag', 'key', 'lastModified', 'size'], `${object.key} comes as listed`);
          assert.equal(object.size, object.key.length);
        }
      }
      const last = progress.at(-1)!;
      assert.equal(last.objects, CLOSED.length + OPEN.length);
      assert.equal(last.done, true);
      if (mode === 'auto') assert.equal(last.mode, 'list', 'Talus lists metadata: auto picks list mode although the first objects are unreadable');
    });
  }

  test('auto mode, a caller who may read nothing: every object as listed, and Talus is not taken for a server without metadata listings', async () => {
    const { objects, progress } = await scan(readsNothing, 'auto');
    assert.deepEqual(objects.map((object) => object.key), [...CLOSED, ...OPEN]);
    for (const object of objects) assert.equal(object.userMetadata, undefined, object.key);
    assert.notEqual(progress.at(-1)!.mode, 'head');
  });
});
