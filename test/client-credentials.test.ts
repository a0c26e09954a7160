/**
 * talus/client's credentials: every source of the AWS SDKs' chain against
 * local fakes (files in a temp HOME, local HTTP servers for STS, ECS and
 * IMDSv2), each resolved in a child process whose environment is the fake
 * world; refresh ahead of expiry with one refresh in flight; and the client
 * signing with what it resolved (session token included).
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { RefreshingCredentials, type AwsCredentials } from '../src/client/credentials/refreshing-credentials.ts';
import { S3Client } from '../src/client/s3-client.ts';
import { PROJECT_ROOT } from './helpers/process.ts';

const run = promisify(execFile);
const PROBE = join(PROJECT_ROOT, 'test', 'fixtures', 'credentials-probe.ts');

interface Resolved {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: string;
}

let home: string;

/** Runs the probe with only `env` (plus PATH and a temp HOME): no real AWS setting of this machine leaks in. */
async function resolveIn(env: Record<string, string>, calls = 1): Promise<Resolved[]> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', PROBE, String(calls)], {
    cwd: PROJECT_ROOT,
    timeout: 60_000,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: home,
      AWS_CONFIG_FILE: join(home, '.aws', 'config'),
      AWS_SHARED_CREDENTIALS_FILE: join(home, '.aws', 'credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      ...env,
    },
  });
  const result = JSON.parse(stdout.trim()) as Resolved[] | { error: string };
  if (!Array.isArray(result)) throw new Error(result.error);
  return result;
}

async function listen(handler: (request: IncomingMessage, body: string, response: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => handler(request, body, response));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function inMinutes(minutes: number): string {
  return new Date(Date.now() + minutes * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

describe('the default credential chain, source by source', () => {
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'talus-creds-'));
    await mkdir(join(home, '.aws'));
  });
  after(async () => {
    await rm(home, { recursive: true, force: true });
  });

  test('environment variables, with a session token', async () => {
    const [resolved] = await resolveIn({ AWS_ACCESS_KEY_ID: 'AKIAENV', AWS_SECRET_ACCESS_KEY: 'env-secret', AWS_SESSION_TOKEN: 'env-token' });
    assert.deepEqual(resolved, { accessKeyId: 'AKIAENV', secretAccessKey: 'env-secret', sessionToken: 'env-token' });
  });

  test('the shared credentials file, the default profile and AWS_PROFILE', async () => {
    await writeFile(join(home, '.aws', 'credentials'), '[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other-secret\naws_session_token = other-token\n');
    assert.equal((await resolveIn({}))[0]!.accessKeyId, 'AKIADEFAULT');
    assert.deepEqual((await resolveIn({ AWS_PROFILE: 'other' }))[0], { accessKeyId: 'AKIAOTHER', secretAccessKey: 'other-secret', sessionToken: 'other-token' });
    await rm(join(home, '.aws', 'credentials'));
  });

  test('credential_process of a profile in the shared config file', async () => {
    const script = join(home, 'print-credentials.mjs');
    await writeFile(script, `process.stdout.write(JSON.stringify({ Version: 1, AccessKeyId: 'AKIAPROCESS', SecretAccessKey: 'process-secret', SessionToken: 'process-token', Expiration: '${inMinutes(60)}' }));\n`);
    await chmod(script, 0o755);
    await writeFile(join(home, '.aws', 'config'), `[profile tool]\ncredential_process = ${process.execPath} ${script}\n`);
    const [resolved] = await resolveIn({ AWS_PROFILE: 'tool' });
    assert.equal(resolved!.accessKeyId, 'AKIAPROCESS');
    assert.equal(resolved!.sessionToken, 'process-token');
    assert.ok(resolved!.expiration !== undefined);
    await rm(join(home, '.aws', 'config'));
  });

  test('a web identity token file, exchanged at a local fake STS (AssumeRoleWithWebIdentity)', async () => {
    const seen: string[] = [];
    const sts = await listen((_request, body, response) => {
      seen.push(body);
      response.setHeader('content-type', 'text/xml');
      response.end(
        `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>` +
          `<Credentials><AccessKeyId>ASIAWEBID</AccessKeyId><SecretAccessKey>web-secret</SecretAccessKey><SessionToken>web-token</SessionToken><Expiration>${inMinutes(60)}</Expiration></Credentials>` +
          `<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/app/session</Arn><AssumedRoleId>AROAEXAMPLE:session</AssumedRoleId></AssumedRoleUser>` +
          `</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
      );
    });
    try {
      const tokenFile = join(home, 'web-identity-token');
      await writeFile(tokenFile, 'the-oidc-token');
      const [resolved] = await resolveIn({
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
        AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/app',
        AWS_ROLE_SESSION_NAME: 'session',
        AWS_REGION: 'us-east-1',
        AWS_ENDPOINT_URL_STS: sts.url,
      });
      assert.deepEqual({ ...resolved, expiration: undefined }, { accessKeyId: 'ASIAWEBID', secretAccessKey: 'web-secret', sessionToken: 'web-token', expiration: undefined });
      assert.equal(seen.length, 1);
      assert.match(seen[0]!, /Action=AssumeRoleWithWebIdentity/);
      assert.match(seen[0]!, /WebIdentityToken=the-oidc-token/);
    } finally {
      sts.server.close();
    }
  });

  test('ECS container credentials from a local endpoint, with its authorization token; asked again, fresh ones', async () => {
    let served = 0;
    const authorizations: (string | undefined)[] = [];
    const ecs = await listen((request, _body, response) => {
      authorizations.push(request.headers['authorization']);
      served++;
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ AccessKeyId: `ASIAECS${served}`, SecretAccessKey: 'ecs-secret', Token: `ecs-token-${served}`, Expiration: inMinutes(60) }));
    });
    try {
      const resolved = await resolveIn({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${ecs.url}/v2/credentials/abc`, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'ecs-auth' }, 2);
      assert.deepEqual(resolved.map((credentials) => credentials.accessKeyId), ['ASIAECS1', 'ASIAECS2']);
      assert.equal(resolved[0]!.sessionToken, 'ecs-token-1');
      assert.ok(authorizations.every((value) => value === 'ecs-auth'), JSON.stringify(authorizations));
    } finally {
      ecs.server.close();
    }
  });

  test('EC2 instance metadata, IMDSv2: a session token first, then the role\'s credentials', async () => {
    const requests: string[] = [];
    const imds = await listen((request, _body, response) => {
      requests.push(`${request.method} ${request.url}`);
      if (request.method === 'PUT' && request.url === '/latest/api/token') {
        assert.ok(request.headers['x-aws-ec2-metadata-token-ttl-seconds'] !== undefined);
        response.end('imds-session');
        return;
      }
      if (request.headers['x-aws-ec2-metadata-token'] !== 'imds-session') {
        response.statusCode = 401;
        response.end();
        return;
      }
      if (request.url === '/latest/meta-data/iam/security-credentials/') {
        response.end('app-role');
        return;
      }
      if (request.url === '/latest/meta-data/iam/security-credentials/app-role') {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: 'ASIAIMDS', SecretAccessKey: 'imds-secret', Token: 'imds-token', Expiration: inMinutes(60), LastUpdated: inMinutes(0) }));
        return;
      }
      response.statusCode = 404;
      response.end();
    });
    try {
      const [resolved] = await resolveIn({ AWS_EC2_METADATA_DISABLED: 'false', AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
      assert.equal(resolved!.accessKeyId, 'ASIAIMDS');
      assert.equal(resolved!.sessionToken, 'imds-token');
      assert.equal(requests[0], 'PUT /latest/api/token', 'IMDSv2 starts with a session token');
    } finally {
      imds.server.close();
    }
  });
});

describe('RefreshingCredentials', () => {
  test('refreshes ahead of expiry in the background, with one refresh in flight for many callers', async () => {
    let now = 0;
    let calls = 0;
    let release: (() => void) | undefined;
    const provider = async (): Promise<AwsCredentials> => {
      calls++;
      if (calls > 1) await new Promise<void>((resolve) => (release = resolve));
      return { accessKeyId: `AKIA${calls}`, secretAccessKey: 's', sessionToken: `t${calls}`, expiration: new Date(now + 60 * 60_000) };
    };
    const credentials = new RefreshingCredentials(provider, { now: () => now });
    assert.equal(credentials.peek(), undefined, 'nothing before the first fetch');
    const first = await Promise.all(Array.from({ length: 20 }, () => credentials.get()));
    assert.ok(first.every((c) => c.accessKeyId === 'AKIA1'));
    assert.equal(calls, 1, 'twenty callers, one fetch');

    now = 56 * 60_000; // 4 minutes left: inside the refresh window
    const during = Array.from({ length: 20 }, () => credentials.peek());
    assert.ok(during.every((c) => c?.accessKeyId === 'AKIA1'), 'the current credentials serve while the refresh runs');
    assert.equal(calls, 2, 'one background refresh');

    now = 59 * 60_000 + 50_000; // 10 s left: too close to sign with
    const waiting = Promise.all(Array.from({ length: 10 }, () => credentials.get()));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls, 2, 'callers join the refresh in flight');
    release!();
    assert.ok((await waiting).every((c) => c.accessKeyId === 'AKIA2'));
    assert.equal(credentials.refreshes, 2);
  });

  test('a failed refresh is reported to whoever waits, and the next call tries again', async () => {
    let calls = 0;
    const credentials = new RefreshingCredentials(async () => {
      calls++;
      if (calls === 1) throw new Error('STS is down');
      return { accessKeyId: 'AKIAOK', secretAccessKey: 's' };
    });
    await assert.rejects(credentials.get(), /STS is down/);
    assert.equal((await credentials.get()).accessKeyId, 'AKIAOK');
  });
});

describe('S3Client signs with what the credentials resolve to', () => {
  test('explicit keys win over the environment; a provider\'s session token is sent signed; rotated keys are used after refresh', async () => {
    const seen: { authorization: string; token: string | undefined }[] = [];
    const fake = await listen((request, _body, response) => {
      seen.push({ authorization: String(request.headers['authorization']), token: request.headers['x-amz-security-token'] as string | undefined });
      response.setHeader('etag', '"0"');
      response.end();
    });
    const saved = { id: process.env['AWS_ACCESS_KEY_ID'], secret: process.env['AWS_SECRET_ACCESS_KEY'] };
    process.env['AWS_ACCESS_KEY_ID'] = 'AKIAFROMENV';
    process.env['AWS_SECRET_ACCESS_KEY'] = 'env-secret';
    try {
      const explicit = new S3Client({ endpoint: fake.url, accessKeyId: 'AKIAEXPLICIT', secretAccessKey: 'explicit-secret' });
      await explicit.headObject('bucket', 'key');
      await explicit.close();
      assert.match(seen[0]!.authorization, /Credential=AKIAEXPLICIT\//);
      assert.equal(seen[0]!.token, undefined);

      let version = 0;
      const rotating = new S3Client({
        endpoint: fake.url,
        // Four minutes left on each set: inside the 5-minute refresh window from the start.
        credentials: async () => {
          version++;
          return { accessKeyId: `ASIAROT${version}`, secretAccessKey: 'rot-secret', sessionToken: `rot-token-${version}`, expiration: new Date(Date.now() + 4 * 60_000) };
        },
      });
      await rotating.headObject('bucket', 'key');
      assert.match(seen[1]!.authorization, /Credential=ASIAROT1\//);
      assert.match(seen[1]!.authorization, /SignedHeaders=[^,]*x-amz-security-token/);
      assert.equal(seen[1]!.token, 'rot-token-1');
      // The next requests still sign with set 1 while one background refresh fetches set 2.
      await Promise.all([rotating.headObject('bucket', 'key'), rotating.headObject('bucket', 'key')]);
      assert.equal(version, 2, 'one refresh for two requests');
      await rotating.headObject('bucket', 'key');
      assert.match(seen[4]!.authorization, /Credential=ASIAROT2\//);
      assert.equal(seen[4]!.token, 'rot-token-2');
      await rotating.close();
    } finally {
      if (saved.id === undefined) delete process.env['AWS_ACCESS_KEY_ID'];
      else process.env['AWS_ACCESS_KEY_ID'] = saved.id;
      if (saved.secret === undefined) delete process.env['AWS_SECRET_ACCESS_KEY'];
      else process.env['AWS_SECRET_ACCESS_KEY'] = saved.secret;
      fake.server.close();
    }
  });
});
