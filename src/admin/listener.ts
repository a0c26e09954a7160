/**
 * Starts the admin listener beside the S3 one (src/talus.ts calls this once
 * the stores and principals are open).
 */
import type { AddressInfo } from 'node:net';
import type { AuditLog } from '../audit/audit-log.ts';
import type { ConsoleS3Listener } from '../console/console.ts';
import type { Engine } from '../engine/engine.ts';
import type { PrincipalCache } from '../principals/principal-cache.ts';
import type { Principals } from '../principals/principals.ts';
import type { Logger } from '../util/logger.ts';
import { closeGracefully } from '../http/close-gracefully.ts';
import { SHUTDOWN_GRACE_MS } from '../util/limits.ts';
import type { AdminServerInfo } from './operations.ts';
import type { AdminStorage } from './define.ts';
import type { AdminTokens } from './tokens.ts';
import { type MetricsEndpoint, createAdminServer } from './server.ts';

export interface AdminListener {
  url: string;
  close(): Promise<void>;
}

export interface AdminListenOptions {
  port: number;
  address: string;
  /** A taken port is a warning and no listener, instead of an error (the CLI's default port). */
  optional?: boolean | undefined;
  metrics?: MetricsEndpoint | undefined;
  audit: AuditLog;
  principals: Principals;
  keys: PrincipalCache;
  /** Other processes' keys (--workers): resolves once all reloaded them, after a change made here. */
  credentialsChanged?: (() => Promise<void>) | undefined;
  engine: Engine;
  server: AdminServerInfo;
  logger: Logger;
  storage?: AdminStorage | undefined;
  tokens?: AdminTokens | undefined;
  /** The S3 listener the console is a client of; absent: no console. */
  console?: ConsoleS3Listener | undefined;
}

export async function startAdminListener(options: AdminListenOptions): Promise<AdminListener | undefined> {
  const server = createAdminServer(options);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.address, () => resolve());
    });
  } catch (error) {
    if (options.optional === true && (error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      options.logger.warn('the admin API\'s default port is taken: no admin listener (choose one with --console-address)', { port: options.port });
      return undefined;
    }
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const host = options.address === '0.0.0.0' || options.address === '::' ? '127.0.0.1' : options.address;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, close: () => closeGracefully(server, SHUTDOWN_GRACE_MS) };
}

