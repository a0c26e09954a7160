/**
 * The peer: s3rver (npm), a Node S3 implementation that stores objects as
 * files, serving the same S3 operations as Talus. Credentials S3RVER/S3RVER.
 * Run by the suite:
 *   node --import tsx bench/servers/s3rver.ts CONFIG.json
 */
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { announce, exitWithParent, readConfig, type BaselineConfig } from './common.ts';

export interface S3rverConfig extends BaselineConfig {
  directory: string;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  httpServer: Server;
}
type S3rverConstructor = new (options: { port: number; address: string; directory: string; silent: boolean }) => S3rverInstance;

const require = createRequire(import.meta.url);
// s3rver is CommonJS without type declarations.
const S3rver = require('s3rver') as S3rverConstructor;

const config = readConfig<S3rverConfig>();
if (config.workers !== 1) throw new Error('s3rver runs as one process');
const s3rver = new S3rver({ port: config.port, address: config.address, directory: config.directory, silent: true });
exitWithParent();
announce(await s3rver.run());
