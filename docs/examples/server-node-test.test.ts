// talus/server in a node:test suite: one real S3 server for the file, on an
// ephemeral port, in a throw-away store removed on close.
// (In your project, import from 'talus/server'; this file imports the sources so the tests run it.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startServer, type TalusServer } from '../../src/public/server.ts';

let s3: TalusServer;
let client: S3Client;

before(async () => {
  s3 = await startServer({ memory: true, port: 0 });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
});

after(async () => {
  client.destroy();
  await s3.close();
});

test('stores and returns an object', async () => {
  await client.send(new CreateBucketCommand({ Bucket: 'photos' }));
  await client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'cat.txt', Body: 'meow', Metadata: { owner: 'ada' } }));
  const got = await client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'cat.txt' }));
  assert.equal(await got.Body?.transformToString(), 'meow');
  assert.equal(got.Metadata?.['owner'], 'ada');
});
