// talus/scan as a library: every object under a prefix with its metadata, in
// key order. Here against an in-process Talus (talus/server), which serves
// one-call metadata listings; against AWS or s3rver the same loop HEADs each
// object instead ('auto' decides from the first page).
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { scanObjects } from 'talus/scan';
import { startServer } from 'talus/server';

const s3 = await startServer({ memory: true });
try {
  const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials });
  await client.send(new CreateBucketCommand({ Bucket: 'photos' }));
  for (const [name, camera] of [['2026/a.jpg', 'x100v'], ['2026/b.jpg', 'gr3']]) {
    await client.send(new PutObjectCommand({ Bucket: 'photos', Key: name, Body: 'jpeg bytes', ContentType: 'image/jpeg', Metadata: { camera } }));
  }
  client.destroy();

  const found: string[] = [];
  for await (const object of scanObjects({ endpoint: s3.endpoint, bucket: 'photos', prefix: '2026/', credentials, concurrency: 16 })) {
    found.push(`${object.key} ${object.size} ${object.contentType} camera=${object.userMetadata?.['camera']}`);
  }
  console.log(found.join('\n'));
} finally {
  await s3.close();
}
