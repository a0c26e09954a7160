/**
 * Users and their keys, managed with the CLI as separate processes while a
 * server process runs on the same data directory: a new user's key signs
 * requests within seconds; disabled, expired and removed keys (and a removed
 * user's) are refused with 403 InvalidAccessKeyId within seconds. Mostly
 * authentication is observed here; authorization has test/authz-*.test.ts.
 */
import { CreateBucketCommand, DeleteBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { clientFor, parseCredentials, runTalusCli, talusCli, waitForAuth } from './helpers/principals.ts';
import { startServerProcess, type ServerProcess } from './helpers/process.ts';
import { ACCESS_KEY_ID, uniqueBucket } from './helpers/talus.ts';

describe('users and keys through the CLI, while the server runs', () => {
  let dataDir: string;
  let server: ServerProcess;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-users-'));
    server = await startServerProcess(dataDir);
  });
  after(async () => {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('users add prints a key the server accepts; disable, enable, remove and the user\'s removal take effect within seconds', async () => {
    const added = await talusCli(['users', 'add', 'alice', dataDir, '--policy', 'readonly', '--email', 'alice@example.com']);
    assert.match(added, /^AccessKeyId: +TALUS[0-9A-F]{16}\nSecretAccessKey: +\S{40}\n$/, 'exactly the two lines, as the server prints them');
    const alice = parseCredentials(added);
    const client = clientFor(server.url, alice);
    assert.equal(await waitForAuth(client, 'accepted'), 'accepted', "the new user's key is accepted");

    const users = await talusCli(['users', 'list', dataDir]);
    assert.match(users, /^root\t[0-9a-f]{64}\t-\t-\t1$/m);
    assert.match(users, /^alice\t[0-9a-f]{64}\treadonly\talice@example\.com\t1$/m);
    assert.match(await talusCli(['keys', 'list', dataDir]), new RegExp(`^${alice.accessKeyId}\talice\tenabled\t-\t-$`, 'm'));
    assert.match(await talusCli(['keys', 'list', dataDir]), new RegExp(`^${ACCESS_KEY_ID}\troot\tenabled`, 'm'));

    await talusCli(['keys', 'disable', alice.accessKeyId, dataDir]);
    assert.equal(await waitForAuth(client, 'InvalidAccessKeyId'), 'InvalidAccessKeyId', 'a disabled key is refused');
    assert.match(await talusCli(['keys', 'list', dataDir, '--user', 'alice']), /\tdisabled\t/);
    await talusCli(['keys', 'enable', alice.accessKeyId, dataDir]);
    assert.equal(await waitForAuth(client, 'accepted'), 'accepted', 'enabled again');

    // A user owning a bucket cannot be removed. A readonly user creates no buckets: give alice readwrite first.
    assert.equal(await createBucketOutcome(client, uniqueBucket('alice-readonly')), 'AccessDenied', 'a readonly user creates no bucket');
    await talusCli(['policy', 'set', '--user', 'alice', 'readwrite', dataDir]);
    const bucket = uniqueBucket('alice');
    assert.equal(await createBucketOutcome(client, bucket, 15_000), 'created', 'readwrite takes effect within seconds');
    const refused = await runTalusCli(['users', 'remove', 'alice', dataDir]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /user alice owns buckets/);
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));

    const second = parseCredentials(await talusCli(['keys', 'add', dataDir, '--user', 'alice']));
    const secondClient = clientFor(server.url, second);
    assert.equal(await waitForAuth(secondClient, 'accepted'), 'accepted');
    await talusCli(['keys', 'remove', second.accessKeyId, dataDir]);
    assert.equal(await waitForAuth(secondClient, 'InvalidAccessKeyId'), 'InvalidAccessKeyId', 'a removed key is refused');

    await talusCli(['users', 'remove', 'alice', dataDir]);
    assert.equal(await waitForAuth(client, 'InvalidAccessKeyId'), 'InvalidAccessKeyId', "a removed user's keys are refused");
    assert.doesNotMatch(await talusCli(['users', 'list', dataDir]), /alice/);
    client.destroy();
    secondClient.destroy();
  });

  test('a key with --expires works until then and is refused after, without any change in the store', async () => {
    await talusCli(['users', 'add', 'bob', dataDir]);
    const key = parseCredentials(await talusCli(['keys', 'add', dataDir, '--user', 'bob', '--expires', '8s']));
    const client = clientFor(server.url, key);
    assert.equal(await waitForAuth(client, 'accepted'), 'accepted');
    assert.equal(await waitForAuth(client, 'InvalidAccessKeyId', 20_000), 'InvalidAccessKeyId', 'refused once expired');
    assert.match(await talusCli(['keys', 'list', dataDir, '--user', 'bob']), new RegExp(`^${key.accessKeyId}\tbob\texpired\t\\d{4}-`, 'm'));
    client.destroy();
  });

  test('policies: built-in names and files are stored, malformed ones refused with why; root keeps a key', async () => {
    await talusCli(['users', 'add', 'carol', dataDir, '--policy', 'writeonly']);
    assert.match(await talusCli(['policy', 'show', '--user', 'carol', dataDir]), /"Action":\["s3:PutObject"\]/);
    const good = join(dataDir, '..', `policy-${process.pid}.json`);
    const bad = join(dataDir, '..', `bad-policy-${process.pid}.json`);
    const document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}]}';
    await writeFile(good, document);
    await writeFile(bad, '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject"}]}');
    try {
      await talusCli(['policy', 'set', '--user', 'carol', good, dataDir]);
      assert.equal((await talusCli(['policy', 'show', '--user', 'carol', dataDir])).trim(), document, 'shown as given');
      const refused = await runTalusCli(['policy', 'set', '--user', 'carol', bad, dataDir]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /is not a valid policy: .*Resource/i);
      assert.equal((await talusCli(['policy', 'show', '--user', 'carol', dataDir])).trim(), document, 'a refused policy changes nothing');
      const malformedKey = await runTalusCli(['keys', 'add', dataDir, '--user', 'carol', '--policy', bad]);
      assert.equal(malformedKey.code, 1);
      assert.doesNotMatch(malformedKey.stdout, /AccessKeyId/, 'no key made');
      const unknown = await runTalusCli(['users', 'add', 'dave', dataDir, '--policy', 'readonlyy']);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /not a built-in policy \(readwrite, readonly, writeonly, consoleAdmin\)/);

      const key = parseCredentials(await talusCli(['keys', 'add', dataDir, '--user', 'carol', '--policy', 'readonly']));
      assert.match(await talusCli(['policy', 'show', '--key', key.accessKeyId, dataDir]), /s3:GetBucketLocation/);
      await talusCli(['policy', 'set', '--key', key.accessKeyId, 'none', dataDir]);
      assert.equal((await talusCli(['policy', 'show', '--key', key.accessKeyId, dataDir])).trim(), 'none');
    } finally {
      await rm(good, { force: true });
      await rm(bad, { force: true });
    }
    const lastRoot = await runTalusCli(['keys', 'remove', ACCESS_KEY_ID, dataDir]);
    assert.equal(lastRoot.code, 1);
    assert.match(lastRoot.stderr, /root's last enabled key/);
  });
});

/** 'created', or the error CreateBucket answered last; retried until created or `withinMs` passed (policy changes take up to 2 s). */
async function createBucketOutcome(client: S3Client, bucket: string, withinMs = 0): Promise<string> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return 'created';
    } catch (error) {
      if (Date.now() >= deadline) return (error as Error).name;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
