// talus/server in a Jest suite (jest is not a dependency of Talus: this file
// is an example to copy). Talus is ESM only: run Jest with ESM enabled,
// `NODE_OPTIONS=--experimental-vm-modules npx jest`, and no transform for
// .mjs files (`"transform": {}` in the Jest config). `expect` and the hooks
// are Jest's globals.
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startServer } from 'talus/server';

let s3;
let client;

beforeAll(async () => {
  s3 = await startServer({ memory: true, port: 0 });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
});

afterAll(async () => {
  client.destroy();
  await s3.close();
});

test('stores and returns an object', async () => {
  await client.send(new CreateBucketCommand({ Bucket: 'photos' }));
  await client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'cat.txt', Body: 'meow', Metadata: { owner: 'ada' } }));
  const got = await client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'cat.txt' }));
  expect(await got.Body?.transformToString()).toBe('meow');
  expect(got.Metadata?.owner).toBe('ada');
});
