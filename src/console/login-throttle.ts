/**
 * Slows password guessing at the console's login: each source address may
 * fail a bounded number of times per window; past that its logins are
 * refused (429) until the window ends, right secret or not. Keys are long
 * random strings, so this is defence in depth against guessing, and keeps a
 * guesser from filling the audit log at line rate.
 */

/** Failed logins allowed per source address and window. */
export const LOGIN_FAILURES_MAX = 10;
export const LOGIN_WINDOW_MS = 60_000;
/** Source addresses tracked at once; past it the oldest entry goes (a flood of addresses cannot grow memory). */
const TRACKED_SOURCES_MAX = 4096;

export class LoginThrottle {
  /** Insertion order = oldest window first. */
  readonly #failures = new Map<string, { count: number; sinceMs: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Whether this source may try to log in now. */
  allows(source: string): boolean {
    const entry = this.#failures.get(source);
    if (entry === undefined) return true;
    if (this.#now() - entry.sinceMs >= LOGIN_WINDOW_MS) {
      this.#failures.delete(source);
      return true;
    }
    return entry.count < LOGIN_FAILURES_MAX;
  }

  failed(source: string): void {
    const now = this.#now();
    const entry = this.#failures.get(source);
    if (entry !== undefined && now - entry.sinceMs < LOGIN_WINDOW_MS) {
      entry.count++;
      return;
    }
    this.#failures.delete(source);
    if (this.#failures.size >= TRACKED_SOURCES_MAX) {
      const oldest = this.#failures.keys().next();
      if (oldest.done !== true) this.#failures.delete(oldest.value);
    }
    this.#failures.set(source, { count: 1, sinceMs: now });
  }
}
