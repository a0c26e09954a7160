/**
 * A read that found fewer bytes than the range asked for: the object is
 * shorter than it should be (truncated on disk, or a remote answering with
 * less). It says nothing about the health of where it came from, unlike a
 * failure to reach it.
 */
export class ShortReadError extends Error {
  override name = 'ShortReadError';
}
