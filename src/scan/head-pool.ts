/**
 * `talus scan`'s HEAD requests, over HTTP/1.1 connections of its own.
 *
 * Why not the S3Client's undici pool: in head mode the scanner and the server
 * share the machine's cores, and a CPU profile of a 10 000-object head walk
 * had the scanner spending more on undici than on anything else — its
 * dispatch, request and header objects, llhttp in WebAssembly, timers — and
 * one `write` system call per request (undici writes each request's head as
 * it is dispatched, also when 8 are pipelined on a connection). A HEAD needs
 * little of that: a request with no body, an answer with no body (RFC 9110
 * §9.3.2, whatever its Content-Length says), a status and a few headers.
 * Here every request dispatched in one turn of the event loop goes out in one
 * `write` per connection, and an answer's head is read with a few indexOf.
 * docs/PERFORMANCE.md, "talus scan head, round 5", has the figures. It
 * serves plain-http endpoints on this host only (scan.ts): the case measured;
 * elsewhere HEADs go through the S3Client.
 *
 * What it keeps from the pool it replaces: `connections` keep-alive
 * connections at most, `pipelining` requests on each; requests beyond that
 * wait in order. Unlike it, a request goes to a new connection (while fewer
 * than `connections` are open) rather than behind another on a busy one. A connection that closes (the server's keep-alive timeout,
 * `Connection: close`, a reset) sends its unanswered HEADs again on another
 * (HEAD is idempotent); a HEAD that was the first unanswered one on
 * HEAD_ATTEMPTS_MAX connections lost without `Connection: close` fails. A
 * connection silent for `timeoutMs` with requests outstanding fails them.
 * Requests are signed (SigV4, header auth, request-signer.ts) when they are written.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { errorFromResponse } from '../client/response.ts';
import type { ObjectResponse } from '../client/s3-client.ts';
import { encodeComponent, encodeKeyPath } from '../client/sigv4-signer.ts';
import { EMPTY_SHA256, type ScanRequestSigner } from './request-signer.ts';
import { assert } from '../util/assert.ts';

/** Connections a HEAD may be first in line on when they are lost (a server's keep-alive timeout, a restart). */
export const HEAD_ATTEMPTS_MAX = 3;
/** Longest silence on a connection with HEADs outstanding (connecting included). */
export const HEAD_TIMEOUT_MS_DEFAULT = 30_000;
/**
 * Longest wait for the whole head of an answer, from the write of the oldest
 * HEAD unanswered on a connection: a server trickling bytes is never silent
 * for HEAD_TIMEOUT_MS but may hold a HEAD for hours. 300 s, undici's
 * headersTimeout (what held the HEADs before this pool).
 */
export const HEAD_ANSWER_DEADLINE_MS_DEFAULT = 300_000;
/** 1xx answers before one request's final answer at most (S3 sends none to a HEAD; a server sending them without end is broken). */
const INFORMATIONAL_ANSWERS_MAX = 16;
/** An answer's head longer than this is no S3 server's (node's own limit is 16 KiB): the connection is dropped. */
const RESPONSE_HEAD_CHARS_MAX = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export interface HeadPoolOptions {
  /** 'http://127.0.0.1:9000' (plain http: scheme, host, port). */
  endpoint: string;
  /** Signs for the endpoint's host. */
  signer: ScanRequestSigner;
  /** Connections at most; each is opened when every open one is busy, so `connections` HEADs in flight use them all. */
  connections: number;
  /** HEADs on one connection before the earlier ones are answered. */
  pipelining: number;
  timeoutMs?: number;
  /** Longest wait for an answer's head, counted from the write of the oldest unanswered HEAD; default HEAD_ANSWER_DEADLINE_MS_DEFAULT. */
  answerDeadlineMs?: number;
  /** Aborts every HEAD outstanding and any later one. */
  signal?: AbortSignal;
}

/** A HEAD from dispatch to answer. */
interface Head {
  /** '/bucket/key', in canonical encoding (what is signed is what is sent). */
  readonly path: string;
  readonly resolve: (response: ObjectResponse) => void;
  readonly reject: (error: Error) => void;
  /** Connections lost while this HEAD was the first unanswered one on them (it may be what the server choked on). */
  attempts: number;
  /** performance.now() when it was last handed to a connection (its deadline counts from there). */
  sentAt: number;
}

export class HeadPool {
  readonly #host: string;
  readonly #hostname: string;
  readonly #port: number;
  readonly #signer: ScanRequestSigner;
  readonly #connectionsMax: number;
  readonly #pipelining: number;
  readonly #timeoutMs: number;
  readonly #answerDeadlineMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.#abortAll(abortReason(this.#signal!));
  readonly #connections: HeadConnection[] = [];
  /** HEADs waiting for room on a connection, in dispatch order. */
  readonly #waiting: Head[] = [];
  #closed = false;
  /** The signer has no usable keys and a fetch is under way; HEADs wait in #waiting meanwhile. */
  #awaitingKeys = false;

  constructor(options: HeadPoolOptions) {
    const url = new URL(options.endpoint);
    assert(url.protocol === 'http:', 'head pool: a plain-http endpoint');
    assert(Number.isInteger(options.connections) && options.connections >= 1, 'head pool: connections ≥ 1');
    assert(Number.isInteger(options.pipelining) && options.pipelining >= 1, 'head pool: pipelining ≥ 1');
    this.#host = url.host;
    this.#hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.#port = url.port === '' ? 80 : Number(url.port);
    this.#signer = options.signer;
    assert(this.#signer.host === this.#host, 'head pool: the signer signs for the endpoint');
    this.#connectionsMax = options.connections;
    this.#pipelining = options.pipelining;
    this.#timeoutMs = options.timeoutMs ?? HEAD_TIMEOUT_MS_DEFAULT;
    this.#answerDeadlineMs = options.answerDeadlineMs ?? HEAD_ANSWER_DEADLINE_MS_DEFAULT;
    this.#signal = options.signal;
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** HEAD /bucket/key: status and headers (lower-case names, latin1 values as on the wire); a non-2xx answer rejects with S3RequestError. */
  headObject(bucket: string, key: string): Promise<ObjectResponse> {
    assert(bucket !== '' && key !== '', 'head pool: bucket and key');
    return new Promise<ObjectResponse>((resolve, reject) => {
      if (this.#signal?.aborted === true) return reject(abortReason(this.#signal));
      if (this.#closed) return reject(new Error('head pool: closed'));
      this.#dispatch({ path: `/${encodeComponent(bucket)}/${encodeKeyPath(key)}`, resolve, reject, attempts: 0, sentAt: 0 });
    });
  }

  /** Closes every connection (call when no HEAD is outstanding; any still waiting fails). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#abortAll(new Error('head pool: closed'));
  }

  #dispatch(head: Head): void {
    const connection = this.#signer.ready ? this.#withRoom() : undefined;
    if (connection === undefined) {
      this.#waiting.push(head);
      this.#drain();
    } else {
      this.#send(connection, head);
    }
  }

  /**
   * Sends waiting HEADs while connections have room. A HEAD is signed when it
   * is written, a resent or queued one too: without usable keys (a first
   * fetch, an expired set) they all wait for `keys()`, and fail with its
   * error (an expired credential fails the scan rather than a 403 per object).
   */
  #drain(): void {
    if (!this.#signer.ready) return this.#awaitKeys();
    while (this.#waiting.length > 0 && !this.#closed) {
      const roomy = this.#withRoom();
      if (roomy === undefined) break;
      this.#send(roomy, this.#waiting.shift()!);
    }
  }

  #awaitKeys(): void {
    if (this.#awaitingKeys) return;
    this.#awaitingKeys = true;
    this.#signer.keys().then(
      () => {
        this.#awaitingKeys = false;
        // Closed or aborted meanwhile: #abortAll has failed the waiting HEADs already.
        if (!this.#closed && this.#signal?.aborted !== true) this.#drain();
      },
      (error: Error) => {
        this.#awaitingKeys = false;
        for (const head of this.#waiting.splice(0)) head.reject(error);
      },
    );
  }

  /**
   * An idle connection; else a new one while the cap allows; else the one with
   * the fewest outstanding HEADs below the pipelining depth. HEADs are spread
   * over every connection allowed before any is pipelined behind another: on
   * a multi-worker server each connection is one worker's (filling one to the
   * depth first left the rest of the cap, and the other workers, unused).
   */
  #withRoom(): HeadConnection | undefined {
    let best: HeadConnection | undefined;
    for (const connection of this.#connections) {
      if (connection.accepting && connection.outstanding < this.#pipelining && (best === undefined || connection.outstanding < best.outstanding)) best = connection;
    }
    if ((best === undefined || best.outstanding > 0) && this.#connections.length < this.#connectionsMax) best = this.#open();
    return best;
  }

  #send(connection: HeadConnection, head: Head): void {
    connection.send(head, this.#requestText(head));
  }

  #requestText(head: Head): string {
    const signed = this.#signer.sign('HEAD', head.path, '');
    const tokenLine = signed.sessionToken === undefined ? '' : `x-amz-security-token: ${signed.sessionToken}\r\n`;
    return `HEAD ${head.path} HTTP/1.1\r\nhost: ${this.#host}\r\nx-amz-date: ${signed.amzDate}\r\nx-amz-content-sha256: ${EMPTY_SHA256}\r\nauthorization: ${signed.authorization}\r\n${tokenLine}\r\n`;
  }

  #open(): HeadConnection {
    const socket = netConnect({ host: this.#hostname, port: this.#port, noDelay: true });
    const connection = new HeadConnection(socket, this.#timeoutMs, this.#answerDeadlineMs, {
      answered: (done) => this.#fill(done),
      closed: (done, unanswered, error, announced) => this.#closedConnection(done, unanswered, error, announced),
    });
    this.#connections.push(connection);
    return connection;
  }

  /** A connection has room: give it the next waiting HEADs. */
  #fill(connection: HeadConnection): void {
    if (this.#waiting.length > 0 && !this.#signer.ready) return this.#awaitKeys();
    while (this.#waiting.length > 0 && connection.accepting && connection.outstanding < this.#pipelining) this.#send(connection, this.#waiting.shift()!);
  }

  #closedConnection(connection: HeadConnection, unanswered: Head[], error: Error, announced: boolean): void {
    const index = this.#connections.indexOf(connection);
    if (index >= 0) this.#connections.splice(index, 1);
    // After `Connection: close` the server reads no further request: those behind it lose nothing. A connection lost
    // otherwise counts against the first unanswered HEAD only (the server may have read it; not those behind it).
    if (!announced && unanswered.length > 0) unanswered[0]!.attempts++;
    // Unanswered HEADs go again, first in line (they were dispatched before the waiting ones).
    const again: Head[] = [];
    for (const head of unanswered) {
      if (this.#closed || this.#signal?.aborted === true || error instanceof HeadTimeoutError) head.reject(error);
      else if (head.attempts >= HEAD_ATTEMPTS_MAX) head.reject(error);
      else again.push(head);
    }
    this.#waiting.unshift(...again);
    if (this.#waiting.length > 0 && !this.#closed) this.#drain();
  }

  #abortAll(error: Error): void {
    for (const head of this.#waiting.splice(0)) head.reject(error);
    for (const connection of this.#connections.splice(0)) connection.destroy(error);
  }
}

interface ConnectionEvents {
  /** An answer came: the connection may take another HEAD. */
  answered(connection: HeadConnection): void;
  /** The connection is gone; `unanswered` were sent (or about to be) and got no answer; `announced`: by `Connection: close`. */
  closed(connection: HeadConnection, unanswered: Head[], error: Error, announced: boolean): void;
}

/** One HTTP/1.1 connection carrying pipelined HEADs; answers come in the order the requests went. */
class HeadConnection {
  readonly #socket: Socket;
  readonly #events: ConnectionEvents;
  /** Written or to be written, not answered, in order. */
  readonly #sent: Head[] = [];
  /** Requests to write at the end of this turn of the event loop. */
  #out = '';
  #flushScheduled = false;
  /** Received and not parsed yet (latin1: one char per byte). */
  #received = '';
  /** False once the server said it closes, or the socket went. */
  accepting = true;
  #gone = false;
  /** The server's last answer said `Connection: close`. */
  #announcedClose = false;
  #error: Error | undefined;
  readonly #answerDeadlineMs: number;
  /** Armed while HEADs are outstanding; when it fires it checks the oldest one's deadline (no re-arming per answer). */
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** 1xx answers since the last final one. */
  #informational = 0;

  constructor(socket: Socket, timeoutMs: number, answerDeadlineMs: number, events: ConnectionEvents) {
    this.#socket = socket;
    this.#events = events;
    this.#answerDeadlineMs = answerDeadlineMs;
    socket.setTimeout(timeoutMs);
    socket.on('timeout', () => this.destroy(new HeadTimeoutError(`HEAD: no answer for ${timeoutMs} ms`)));
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', (error) => (this.#error ??= error));
    socket.on('end', () => {
      // The server is closing this connection (its keep-alive ran out): send nothing more on it.
      this.accepting = false;
      socket.end();
    });
    socket.on('close', () => this.#close(this.#error ?? new Error('HEAD: the server closed the connection')));
  }

  get outstanding(): number {
    return this.#sent.length;
  }

  send(head: Head, text: string): void {
    head.sentAt = performance.now();
    this.#sent.push(head);
    this.#deadlineTimer ??= this.#armDeadline(this.#answerDeadlineMs);
    this.#write(text);
  }

  #armDeadline(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      const oldest = this.#sent[0];
      if (oldest === undefined || this.#gone) return;
      const left = oldest.sentAt + this.#answerDeadlineMs - performance.now();
      if (left <= 0) this.destroy(new HeadTimeoutError(`HEAD: no whole answer within ${this.#answerDeadlineMs} ms`));
      else this.#deadlineTimer = this.#armDeadline(left);
    }, ms);
    timer.unref();
    return timer;
  }

  destroy(error: Error): void {
    this.#error ??= error;
    this.#socket.destroy();
    this.#close(this.#error);
  }

  #write(text: string): void {
    this.#out += text;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // After the microtasks of this turn: every HEAD dispatched meanwhile (answers arrive several per read) goes in one write.
    process.nextTick(() => {
      this.#flushScheduled = false;
      const out = this.#out;
      this.#out = '';
      if (!this.#gone && out !== '') this.#socket.write(out, 'latin1');
    });
  }

  #receive(chunk: Buffer): void {
    this.#received = this.#received === '' ? chunk.toString('latin1') : this.#received + chunk.toString('latin1');
    let start = 0;
    for (;;) {
      // Empty lines before a status line are skipped, as llhttp skips them.
      while (this.#received.startsWith('\r\n', start)) start += 2;
      const end = this.#received.indexOf('\r\n\r\n', start);
      if (end < 0) break;
      const answer = parseResponseHead(this.#received, start, end);
      start = end + 4;
      if (typeof answer === 'string') return this.destroy(new Error(`HEAD: a malformed HTTP response (${answer})`));
      if (answer.status < 200) {
        // 1xx: the real answer follows (a few at most).
        if (++this.#informational > INFORMATIONAL_ANSWERS_MAX) return this.destroy(new Error(`HEAD: a malformed HTTP response (over ${INFORMATIONAL_ANSWERS_MAX} 1xx answers)`));
        continue;
      }
      this.#informational = 0;
      const head = this.#sent.shift();
      if (head === undefined) return this.destroy(new Error('HEAD: an answer to no request'));
      if (answer.closes) {
        this.accepting = false;
        this.#announcedClose = true;
      }
      if (answer.status >= 300) head.reject(errorFromResponse(answer.status, answer.headers, EMPTY));
      else head.resolve({ status: answer.status, headers: answer.headers });
      if (!this.accepting) {
        // The server closes after this answer: what was sent behind it goes again elsewhere.
        this.#socket.end();
        this.#close(new Error('HEAD: the server closed the connection'));
        return;
      }
      this.#events.answered(this);
    }
    this.#received = start === 0 ? this.#received : this.#received.slice(start);
    // A head ended by bare LFs never ends for us: malformed at once rather than read into the next answer.
    if (this.#received.includes('\n\n')) return this.destroy(new Error('HEAD: a malformed HTTP response (a line not ended by CRLF)'));
    if (this.#received.length > RESPONSE_HEAD_CHARS_MAX) this.destroy(new Error(`HEAD: a response head over ${RESPONSE_HEAD_CHARS_MAX} bytes`));
  }

  #close(error: Error): void {
    if (this.#gone) return;
    this.#gone = true;
    this.accepting = false;
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    this.#socket.destroy();
    this.#events.closed(this, this.#sent.splice(0), error, this.#announcedClose);
  }
}

/** A connection silent too long: its HEADs fail, not sent again (the server is stuck, not gone). */
class HeadTimeoutError extends Error {
  override name = 'HeadTimeoutError';
}

interface ResponseHead {
  status: number;
  headers: Record<string, string>;
  /** The server closes the connection after this answer. */
  closes: boolean;
}

/** The whole status line: a reason phrase, if any, without CR or LF (lines are split on CRLF only, as llhttp splits them). */
const STATUS_LINE = /^HTTP\/1\.([01]) (\d\d\d)(?: [^\r\n]*)?$/;
/** A header name: an RFC 9110 token (so no space before the colon, no folded line, no CR or LF). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Bytes llhttp rejects in a header value or a reason phrase: controls other than HTAB (CR and LF included), and DEL. */
const CONTROL_BYTE = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * An answer's status line and headers, text[start, end) (latin1), read as
 * strictly as llhttp (undici) reads them: a line is ended by CRLF, and a CR
 * or LF anywhere else, a name that is not a token, a control byte in a value
 * or a status outside 100–599 make the answer malformed (the reason is
 * returned): what a lenient read would do with such bytes — take them into
 * a name, or run into the next pipelined answer — could hand one object
 * another's metadata. Names lower-cased; values without leading spaces and
 * tabs (trailing ones kept, as llhttp keeps them: the scan's output is what
 * it was over undici, and what a listing of the same metadata shows); a
 * repeated header's values joined with ', ' (as flattenHeaders joined undici's).
 */
function parseResponseHead(text: string, start: number, end: number): ResponseHead | string {
  let lineEnd = text.indexOf('\r\n', start);
  if (lineEnd < 0 || lineEnd > end) lineEnd = end;
  const statusLine = text.slice(start, lineEnd);
  const status = STATUS_LINE.exec(statusLine);
  if (status === null || CONTROL_BYTE.test(statusLine)) return 'not an HTTP/1.x status line';
  const code = Number(status[2]);
  if (code < 100 || code > 599) return `status ${code}`;
  const headers: Record<string, string> = {};
  let closes = status[1] === '0';
  let position = lineEnd + 2;
  while (position < end) {
    let next = text.indexOf('\r\n', position);
    if (next < 0 || next > end) next = end;
    const colon = text.indexOf(':', position);
    if (colon <= position || colon > next) return 'a header line without a name';
    const rawName = text.slice(position, colon);
    if (!HEADER_NAME.test(rawName)) return 'a header name that is not a token';
    const name = rawName.toLowerCase();
    const value = withoutLeadingSpace(text, colon + 1, next);
    if (CONTROL_BYTE.test(value)) return 'a control byte in a header value';
    if (name === 'connection') closes = /(?:^|,)\s*close\s*(?:,|$)/i.test(value) || (status[1] === '0' && !/keep-alive/i.test(value));
    if (name === '__proto__') {
      // As undici gave it: an own property, not the prototype.
      Object.defineProperty(headers, name, { value, enumerable: true, configurable: true, writable: true });
    } else {
      const earlier = Object.hasOwn(headers, name) ? headers[name] : undefined;
      headers[name] = earlier === undefined ? value : `${earlier}, ${value}`;
    }
    position = next + 2;
  }
  return { status: code, headers, closes };
}

function withoutLeadingSpace(text: string, from: number, to: number): string {
  while (from < to && (text.charCodeAt(from) === 32 || text.charCodeAt(from) === 9)) from++;
  return text.slice(from, to);
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('request aborted');
}

