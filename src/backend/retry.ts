import { setTimeout as sleep } from 'node:timers/promises';
import { S3RequestError } from '../client/s3-client.ts';
import { assert } from '../util/assert.ts';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const RETRY_POLICY_DEFAULT: RetryPolicy = { attempts: 4, baseDelayMs: 100, maxDelayMs: 5_000 };

/**
 * Runs `operation` until it succeeds, fails for good, or runs out of
 * attempts. Delays grow exponentially with full jitter (a random delay up to
 * the exponential bound), so many requests failing at once against one
 * backend do not come back in lockstep.
 */
export async function withRetries<T>(policy: RetryPolicy, operation: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  assert(Number.isInteger(policy.attempts) && policy.attempts >= 1 && policy.attempts <= 20, `retry attempts ${policy.attempts}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= policy.attempts || !isTransient(error) || signal?.aborted === true) throw error;
      const bound = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      await sleep(Math.random() * bound, undefined, { signal });
    }
  }
}

/** Worth another try: the network, a server error, throttling. Not: a 4xx that will answer the same again. */
export function isTransient(error: unknown): boolean {
  if (error instanceof S3RequestError) return error.status >= 500 || error.code === 'SlowDown' || error.code === 'RequestTimeout' || error.status === 429;
  // Network trouble: undici's errors (UND_ERR_SOCKET, UND_ERR_HEADERS_TIMEOUT, …) and the system's (ECONNREFUSED, ECONNRESET, …).
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && (code.startsWith('UND_ERR_') || /^E[A-Z]+$/.test(code)) && code !== 'UND_ERR_ABORTED';
}
