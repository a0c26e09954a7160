/**
 * Policies and ACLs end to end with real clients (issue 11): a bucket made
 * public-read by a bucket policy serves curl without a signature (and a
 * private one does not); a user made by `talus users add --policy readonly`
 * reads with the AWS CLI and boto3 and is refused every write.
 */
import { CreateBucketCommand, PutBucketPolicyCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AWS, CURL, clientEnv, run, writeAwsConfig } from './helpers/clients.ts';
import { clientFor, parseCredentials, talusCli } from './helpers/principals.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';
import { setTimeout as sleep } from 'node:timers/promises';

const TIMEOUT_MS = 120_000;

describe('policies and ACLs with real clients', { timeout: 240_000 }, () => {
  let talus: TestTalus;
  let home: string;
  const publicBucket = uniqueBucket('public');
  const privateBucket = uniqueBucket('private');

  before(async () => {
    talus = await startTestTalus();
    home = await mkdtemp(join(tmpdir(), 'talus-authz-clients-'));
    await writeAwsConfig(home);
    for (const bucket of [publicBucket, privateBucket]) {
      await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
      await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'docs/hello.txt', Body: `hello from ${bucket}` }));
    }
    const policy = { Version: '2012-10-17', Statement: [{ Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${publicBucket}/*`] }] };
    await talus.client.send(new PutBucketPolicyCommand({ Bucket: publicBucket, Policy: JSON.stringify(policy) }));
  });
  after(async () => {
    await talus.stop();
    await rm(home, { recursive: true, force: true });
  });

  test('curl without a signature reads a bucket made public-read by its policy, and nothing else', { timeout: TIMEOUT_MS }, async () => {
    const env = clientEnv(home);
    const get = (url: string) => run(CURL, ['-sS', '-o', '-', '-w', '\n%{http_code}', url], env);
    const open = await get(`${talus.url}/${publicBucket}/docs/hello.txt`);
    assert.equal(open.stdout, `hello from ${publicBucket}\n200`);
    const closed = await get(`${talus.url}/${privateBucket}/docs/hello.txt`);
    assert.match(closed.stdout, /<Code>AccessDenied<\/Code>[\s\S]*\n403$/);
    // The policy grants GetObject only: no listing, no writes.
    assert.match((await get(`${talus.url}/${publicBucket}`)).stdout, /\n403$/);
    const put = await run(CURL, ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '--data-binary', 'vandal', `${talus.url}/${publicBucket}/docs/hello.txt`], env);
    assert.equal(put.stdout, '403');
    assert.equal((await get(`${talus.url}/${publicBucket}/docs/hello.txt`)).stdout, `hello from ${publicBucket}\n200`);
  });

  test('a readonly user (talus users add --policy readonly) reads with the AWS CLI and boto3 and is refused writes', { timeout: TIMEOUT_MS }, async (t) => {
    const reader = parseCredentials(await talusCli(['users', 'add', 'reader', talus.dataDir, '--policy', 'readonly']));
    // The server takes the new user in within seconds.
    const sdk = clientFor(talus.url, reader);
    for (let attempt = 0; attempt < 60; attempt++) {
      try {
        await sdk.send(new PutObjectCommand({ Bucket: privateBucket, Key: 'probe', Body: 'x' }));
        assert.fail('a readonly user wrote');
      } catch (error) {
        if ((error as Error).name !== 'InvalidAccessKeyId') break;
        await sleep(250);
      }
    }
    sdk.destroy();
    const env = clientEnv(home, { AWS_ACCESS_KEY_ID: reader.accessKeyId, AWS_SECRET_ACCESS_KEY: reader.secretAccessKey });
    const aws = (...args: string[]) => run(AWS, ['--endpoint-url', talus.url, ...args], env);
    const read = await aws('s3', 'cp', `s3://${privateBucket}/docs/hello.txt`, '-');
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout, `hello from ${privateBucket}`);
    // MinIO's readonly (s3:GetObject, s3:GetBucketLocation): object reads, no listing.
    const head = await aws('s3api', 'head-object', '--bucket', privateBucket, '--key', 'docs/hello.txt');
    assert.equal(head.code, 0, head.stderr);
    assert.match(head.stdout, new RegExp(`"ContentLength": ${`hello from ${privateBucket}`.length}`));
    const file = join(home, 'upload.txt');
    await writeFile(file, 'not allowed');
    for (const args of [
      ['s3', 'cp', file, `s3://${privateBucket}/docs/new.txt`],
      ['s3', 'rm', `s3://${privateBucket}/docs/hello.txt`],
      ['s3api', 'put-object-tagging', '--bucket', privateBucket, '--key', 'docs/hello.txt', '--tagging', 'TagSet=[{Key=a,Value=b}]'],
      ['s3api', 'delete-bucket-policy', '--bucket', publicBucket],
      ['s3', 'mb', `s3://${uniqueBucket('reader')}`],
    ]) {
      const result = await aws(...args);
      assert.notEqual(result.code, 0, `${args.join(' ')} succeeded`);
      assert.match(result.stderr, /AccessDenied|Access Denied|403/, `${args.join(' ')}: ${result.stderr}`);
    }
    const script = `
import boto3, botocore, sys
s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3], region_name='us-east-1',
                  config=botocore.config.Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}))
print(s3.get_object(Bucket=sys.argv[4], Key='docs/hello.txt')['Body'].read().decode())
for call in (lambda: s3.put_object(Bucket=sys.argv[4], Key='boto3.txt', Body=b'x'), lambda: s3.delete_object(Bucket=sys.argv[4], Key='docs/hello.txt')):
    try:
        call()
        print('WROTE')
    except botocore.exceptions.ClientError as error:
        print(error.response['Error']['Code'])
`;
    // boto3 is not in Debian's python3 here: the interpreter that has it (pyenv's, in CI too), else skip this part.
    const found = await run('python3', ['-c', 'import boto3, sys; print(sys.executable)'], process.env);
    if (found.code !== 0) {
      t.diagnostic('boto3 is not installed for any python3 on PATH: its part of this test is skipped');
      return;
    }
    const boto = await run(found.stdout.trim(), ['-c', script, talus.url, reader.accessKeyId, reader.secretAccessKey, privateBucket], env);
    assert.equal(boto.code, 0, boto.stderr);
    assert.equal(boto.stdout.trim(), `hello from ${privateBucket}\nAccessDenied\nAccessDenied`);
  });
});
