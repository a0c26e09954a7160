/**
 * Assertions are for programmer errors only: a broken invariant means the
 * process is in a state nobody designed for. Client input never reaches an
 * assertion; it gets an S3Error instead.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, message = 'unreachable'): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}
