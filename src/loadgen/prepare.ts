/**
 * Writing the objects a read, delete or list run needs, before the timed
 * part. Untimed, but done at full concurrency so it does not take long.
 */
import type { S3Client } from '../client/s3-client.ts';
import { AssertionError } from '../util/assert.ts';
import { KeyNames } from './key-space.ts';
import { PayloadSource } from './payload.ts';
import { sizeOfObject } from './sizes.ts';
import { checkConcurrency, checkKeyCount, checkKeyPrefix, checkSizeRange } from './validate.ts';
import type { SizeRange } from './types.ts';

export interface PrepareObjectsOptions {
  client: S3Client;
  bucket: string;
  keyPrefix: string;
  count: number;
  size: SizeRange;
  concurrency: number;
  metadata?: Record<string, string>;
}

/** Attempts per object before preparing fails (covers a connection lost now and then). */
const PUT_ATTEMPTS_MAX = 3;

/** Creates `count` objects named as runLoad names its prepared objects; returns their keys. */
export async function prepareObjects(options: PrepareObjectsOptions): Promise<string[]> {
  checkKeyPrefix(options.keyPrefix);
  checkKeyCount(options.count);
  checkSizeRange(options.size);
  checkConcurrency(options.concurrency);
  const names = new KeyNames(options.keyPrefix, options.count);
  await writePreparedObjects({ ...options, names, payload: new PayloadSource(options.size.max) });
  return Array.from({ length: options.count }, (_, id) => names.name(id));
}

export interface PrepareContext {
  client: S3Client;
  bucket: string;
  names: KeyNames;
  count: number;
  size: SizeRange;
  concurrency: number;
  payload: PayloadSource;
  metadata?: Record<string, string>;
  /** Stops preparing (the promise then rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** PUTs objects 0..count-1; rejects with the first object that failed every attempt. */
export async function writePreparedObjects(context: PrepareContext): Promise<void> {
  const state = { next: 0, failure: undefined as Error | undefined };
  const workers: Promise<void>[] = [];
  for (let worker = 0; worker < Math.min(context.concurrency, context.count); worker++) workers.push(prepareWorker(context, state));
  await Promise.all(workers);
  if (state.failure !== undefined) throw state.failure;
  context.signal?.throwIfAborted();
}

async function prepareWorker(context: PrepareContext, state: { next: number; failure: Error | undefined }): Promise<void> {
  while (state.failure === undefined && state.next < context.count && context.signal?.aborted !== true) {
    const id = state.next++;
    try {
      await putWithAttempts(context, id);
    } catch (error) {
      if (error instanceof AssertionError) throw error;
      state.failure ??= new Error(`preparing object ${context.names.name(id)} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  }
}

async function putWithAttempts(context: PrepareContext, id: number): Promise<void> {
  const key = context.names.name(id);
  const size = sizeOfObject(context.size, id);
  for (let attempt = 1; ; attempt++) {
    try {
      await context.client.putObject(context.bucket, key, context.payload.body(id, size), { contentLength: size, metadata: context.metadata });
      return;
    } catch (error) {
      if (attempt >= PUT_ATTEMPTS_MAX) throw error;
    }
  }
}
