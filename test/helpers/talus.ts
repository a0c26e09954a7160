/**
 * Starts a real Talus in-process on a loopback port with a fresh temporary
 * data directory, and an @aws-sdk/client-s3 client at its default settings.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TalusConfig } from '../../src/config/config.ts';
import { startTalus, type RunningTalus } from '../../src/talus.ts';
import { silentLogger } from '../../src/util/logger.ts';

export const ACCESS_KEY_ID = 'TALUSTESTKEY';
export const SECRET_ACCESS_KEY = 'talus-test-secret-key-0123456789';

export interface TestTalus extends RunningTalus {
  /** Tests run Talus in this process, so its HTTP server is here. */
  server: Server;
  dataDir: string;
  client: S3Client;
  stop(): Promise<void>;
}

export async function startTestTalus(options: { dataDir?: string; region?: string; config?: TalusConfig; port?: number; healInBackground?: boolean } = {}): Promise<TestTalus> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'talus-test-')));
  const talus = await startTalus({
    dataDir,
    port: options.port ?? 0,
    ...(options.config === undefined ? {} : { config: options.config }),
    ...(options.healInBackground === undefined ? {} : { healInBackground: options.healInBackground }),
    address: '127.0.0.1',
    region: options.region ?? 'us-east-1',
    rootAccessKeyId: ACCESS_KEY_ID,
    rootSecretAccessKey: SECRET_ACCESS_KEY,
    logger: process.env['TALUS_TEST_LOG'] === '1' ? undefined : silentLogger,
  });
  const client = makeClient(talus.url);
  const server = talus.server;
  if (server === undefined) throw new Error('startTestTalus serves in-process');
  return {
    ...talus,
    server,
    dataDir,
    client,
    async stop() {
      client.destroy();
      await talus.close();
      if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function makeClient(endpoint: string, credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
}

let bucketCounter = 0;
export function uniqueBucket(prefix = 'test'): string {
  bucketCounter++;
  return `${prefix}-${process.pid}-${bucketCounter}-${Date.now().toString(36)}`;
}
