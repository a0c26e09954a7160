/**
 * openStorage(url): any ObjectStorage from a URL.
 *   memory://            a new in-memory storage; memory://name is the same
 *                        storage for every open of that name in this process
 *   file:///path/to/dir  a directory (created on first write)
 *   s3://bucket/prefix/  a bucket of an S3 endpoint, keys under the prefix
 *                        (a prefix without a trailing '/' gets one)
 */
import { fileURLToPath } from 'node:url';
import type { RetryPolicy } from '../backend/retry.ts';
import type { AwsCredentials, CredentialProvider } from '../client/credentials/refreshing-credentials.ts';
import { FileStorage } from './file-storage.ts';
import { MemoryStorage } from './memory-storage.ts';
import type { ObjectStorage } from './object-storage.ts';
import { S3Storage } from './s3-storage.ts';

export interface OpenStorageOptions {
  /** s3://: the endpoint, e.g. http://127.0.0.1:9000; default AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS S3 of the region. */
  endpoint?: string;
  /** s3://: default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1. */
  region?: string;
  /** s3://: keys or a provider; without them the AWS SDKs' chain finds them (env, profiles, web identity, ECS, IMDS). */
  credentials?: AwsCredentials | CredentialProvider;
  /** s3://: keep-alive connections at most; default 64. */
  connections?: number;
  /** s3://: longest wait for a response's headers, ms; default 30 s. */
  headersTimeoutMs?: number;
  /** s3://: longest silence within a response body, ms; default 30 s. */
  bodyTimeoutMs?: number;
  /** s3://: longest wait for a connection, ms; default 10 s. */
  connectTimeoutMs?: number;
  retry?: RetryPolicy;
}

const namedMemory = new Map<string, MemoryStorage>();

export function openStorage(url: string | URL, options: OpenStorageOptions = {}): ObjectStorage {
  const parsed = typeof url === 'string' ? new URL(url) : url;
  switch (parsed.protocol) {
    case 'memory:': {
      const name = parsed.host + parsed.pathname;
      if (name === '' || name === '/') return new MemoryStorage();
      let storage = namedMemory.get(name);
      if (storage === undefined) namedMemory.set(name, (storage = new MemoryStorage()));
      return storage;
    }
    case 'file:':
      return new FileStorage(fileURLToPath(parsed));
    case 's3:': {
      const bucket = parsed.hostname;
      if (bucket === '') throw new TypeError(`no bucket in ${parsed.href}`);
      let prefix = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
      if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
      const region = options.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1';
      const endpoint = options.endpoint ?? process.env['AWS_ENDPOINT_URL_S3'] ?? process.env['AWS_ENDPOINT_URL'] ?? `https://s3.${region}.amazonaws.com`;
      return new S3Storage({
        endpoint,
        region,
        bucket,
        prefix,
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        ...(options.connections === undefined ? {} : { connections: options.connections }),
        ...(options.headersTimeoutMs === undefined ? {} : { headersTimeoutMs: options.headersTimeoutMs }),
        ...(options.bodyTimeoutMs === undefined ? {} : { bodyTimeoutMs: options.bodyTimeoutMs }),
        ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
        ...(options.retry === undefined ? {} : { retry: options.retry }),
      });
    }
    default:
      throw new TypeError(`openStorage: unsupported URL scheme ${parsed.protocol} (file:, memory:, s3:)`);
  }
}
