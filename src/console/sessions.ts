/**
 * The console's server-side sessions. A login keeps the access key and its
 * secret here, in this process's memory only, so the browser never holds the
 * secret: it holds a random 256-bit session ID in an HttpOnly cookie, and the
 * session's CSRF token in page memory. Sessions are bounded in number and
 * expire after an idle period and after an absolute lifetime, whichever
 * comes first; logout ends one at once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Sessions kept at once; past it the least recently used one ends (a login never fails for lack of room). */
export const CONSOLE_SESSIONS_MAX = 1024;
/**
 * Sessions of one access key at once; a new login past it ends that key's
 * least recently used session, never another key's: one key logging in over
 * and over cannot push everyone else out of CONSOLE_SESSIONS_MAX.
 */
export const CONSOLE_SESSIONS_PER_KEY_MAX = 16;
/** A session unused this long ends (as an unattended browser tab should). */
export const CONSOLE_SESSION_IDLE_MS = 30 * 60 * 1000;
/** No session outlives this, however busy: a stolen cookie is worth a working day at most. */
export const CONSOLE_SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;
/** 32 random bytes: session IDs and CSRF tokens cannot be guessed. */
const TOKEN_BYTES = 32;

export interface ConsoleSession {
  readonly accessKeyId: string;
  /** Signs what the console does for this session; never sent to the browser, never logged. */
  readonly secretAccessKey: string;
  /** 'root' or the user's name, for display. */
  readonly principal: string;
  /** Sent back in the x-talus-csrf header of every state-changing request. */
  readonly csrfToken: string;
  readonly createdMs: number;
  lastUsedMs: number;
}

export class ConsoleSessions {
  /** By SHA-256 of the session ID: the ID itself is kept nowhere on the server. Insertion order = least recently used first. */
  readonly #sessions = new Map<string, ConsoleSession>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** A new session; answers its ID (for the cookie) and the session. */
  start(accessKeyId: string, secretAccessKey: string, principal: string): { id: string; session: ConsoleSession } {
    this.#sweep();
    let ofKey = 0;
    let oldestOfKey: string | undefined;
    for (const [key, session] of this.#sessions) {
      if (session.accessKeyId !== accessKeyId) continue;
      oldestOfKey ??= key;
      ofKey++;
    }
    if (ofKey >= CONSOLE_SESSIONS_PER_KEY_MAX && oldestOfKey !== undefined) this.#sessions.delete(oldestOfKey);
    while (this.#sessions.size >= CONSOLE_SESSIONS_MAX) {
      const oldest = this.#sessions.keys().next();
      if (oldest.done === true) break;
      this.#sessions.delete(oldest.value);
    }
    const id = randomBytes(TOKEN_BYTES).toString('base64url');
    const now = this.#now();
    const session: ConsoleSession = { accessKeyId, secretAccessKey, principal, csrfToken: randomBytes(TOKEN_BYTES).toString('base64url'), createdMs: now, lastUsedMs: now };
    this.#sessions.set(digest(id), session);
    return { id, session };
  }

  /** The live session with this ID (marked used), or undefined when unknown, ended or expired. */
  find(id: string | undefined): ConsoleSession | undefined {
    if (id === undefined || id === '') return undefined;
    const key = digest(id);
    const session = this.#sessions.get(key);
    if (session === undefined) return undefined;
    const now = this.#now();
    if (expired(session, now)) {
      this.#sessions.delete(key);
      return undefined;
    }
    session.lastUsedMs = now;
    // Re-insert: the map stays ordered by last use, so eviction takes the least recently used.
    this.#sessions.delete(key);
    this.#sessions.set(key, session);
    return session;
  }

  end(id: string | undefined): void {
    if (id !== undefined) this.#sessions.delete(digest(id));
  }

  /** Ends every session of an access key (used when the key is found gone). */
  endKey(accessKeyId: string): void {
    for (const [key, session] of this.#sessions) if (session.accessKeyId === accessKeyId) this.#sessions.delete(key);
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, session] of this.#sessions) if (expired(session, now)) this.#sessions.delete(key);
  }
}

/** Constant-time comparison of a CSRF token the browser sent with the session's. */
export function csrfTokenMatches(session: ConsoleSession, given: string | undefined): boolean {
  if (given === undefined) return false;
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(session.csrfToken).digest());
}

function expired(session: ConsoleSession, now: number): boolean {
  return now - session.lastUsedMs >= CONSOLE_SESSION_IDLE_MS || now - session.createdMs >= CONSOLE_SESSION_LIFETIME_MS;
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}
