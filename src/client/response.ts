/**
 * Receiving a response without a stream: an undici dispatch handler that
 * records status and headers, counts the body and keeps only as much of it as
 * the caller needs (nothing for a GET that only counts, a listing's XML, an
 * error document), so the common path allocates no Readable per request.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { assert } from '../util/assert.ts';
import { xmlElementText } from './xml-text.ts';

/** Error documents are small; a larger one is cut here (the code comes first). */
export const ERROR_BODY_BYTES_MAX = 64 * 1024;

/** A non-2xx answer; `code` is the S3 error code of the XML body, or derived from the status when there is none (HEAD). */
export class S3RequestError extends Error {
  override name = 'S3RequestError';
  readonly status: number;
  readonly code: string;
  readonly requestId: string | undefined;

  constructor(status: number, code: string, message: string, requestId?: string) {
    super(`${status} ${code}${message === '' ? '' : `: ${message}`}`);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

/** Names the AWS SDKs use when a response has no error document (HEAD). */
const CODE_BY_STATUS: Readonly<Record<number, string>> = {
  301: 'PermanentRedirect',
  304: 'NotModified',
  400: 'BadRequest',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  411: 'MissingContentLength',
  412: 'PreconditionFailed',
  416: 'InvalidRange',
  500: 'InternalError',
  501: 'NotImplemented',
  503: 'ServiceUnavailable',
};

export interface ReceivedResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Body bytes received, whether kept or not. */
  readonly bytes: number;
  /** The kept part of the body (empty when nothing was kept). */
  readonly body: Buffer;
}

const EMPTY = Buffer.alloc(0);

/**
 * Dispatch handler for one request. `keepBytesMax` is how much of a 2xx body
 * to keep; more than that fails the request (a listing bigger than any valid
 * one). Non-2xx bodies are kept up to ERROR_BODY_BYTES_MAX for the error code.
 */
export class ResponseCollector implements Dispatcher.DispatchHandler {
  readonly promise: Promise<ReceivedResponse>;
  #resolve!: (response: ReceivedResponse) => void;
  #reject!: (error: Error) => void;
  readonly #keepBytesMax: number;
  #status = 0;
  #headers: IncomingHttpHeaders = {};
  #bytes = 0;
  #keepLimit = 0;
  #kept: Buffer[] | null = null;
  #keptBytes = 0;
  #settled = false;
  readonly #signal: AbortSignal | undefined;

  /** `signal` aborts the request: at once if it is on a socket, else as soon as it gets one; the promise rejects with its reason. */
  constructor(keepBytesMax: number, signal?: AbortSignal) {
    assert(Number.isInteger(keepBytesMax) && keepBytesMax >= 0, 'collector: keepBytesMax is a byte count');
    this.#keepBytesMax = keepBytesMax;
    this.#signal = signal;
    this.promise = new Promise<ReceivedResponse>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (signal?.aborted === true) this.#fail(abortReason(signal));
    else signal?.addEventListener('abort', () => this.#fail(abortReason(signal)), { once: true });
  }

  #fail(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#reject(error);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.#signal !== undefined) {
      const signal = this.#signal;
      if (signal.aborted) controller.abort(abortReason(signal));
      else signal.addEventListener('abort', () => controller.abort(abortReason(signal)), { once: true });
    }
    // A retried request (undici may re-dispatch an idempotent one) starts over.
    this.#status = 0;
    this.#bytes = 0;
    this.#kept = null;
    this.#keptBytes = 0;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: the real answer follows
    this.#status = statusCode;
    this.#headers = headers;
    const ok = statusCode < 300;
    this.#keepLimit = ok ? this.#keepBytesMax : ERROR_BODY_BYTES_MAX;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (this.#keepLimit === 0) return;
    if (this.#keptBytes + chunk.length > this.#keepLimit) {
      if (this.#status < 300) {
        controller.abort(new Error(`response body exceeds ${this.#keepLimit} bytes`));
        return;
      }
      chunk = chunk.subarray(0, this.#keepLimit - this.#keptBytes);
    }
    (this.#kept ??= []).push(chunk);
    this.#keptBytes += chunk.length;
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    this.#settled = true;
    const body = this.#kept === null ? EMPTY : this.#kept.length === 1 ? this.#kept[0]! : Buffer.concat(this.#kept, this.#keptBytes);
    this.#resolve({ status: this.#status, headers: flattenHeaders(this.#headers), bytes: this.#bytes, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.#fail(error);
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('request aborted');
}

/** undici gives repeated headers as arrays; S3 responses have none that matter, so join them. */
export function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  let flat = true;
  for (const name in headers) {
    if (typeof headers[name] !== 'string') {
      flat = false;
      break;
    }
  }
  if (flat) return headers as Record<string, string>;
  const out: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) out[name] = typeof value === 'string' ? value : value.join(', ');
  }
  return out;
}

/** The S3RequestError for a non-2xx response, from its error document when it has one. */
export function errorFromResponse(status: number, headers: Record<string, string>, body: Buffer): S3RequestError {
  const text = body.length === 0 ? '' : body.toString('utf8');
  const code = xmlElementText(text, 'Code') ?? CODE_BY_STATUS[status] ?? `Http${status}`;
  const message = xmlElementText(text, 'Message') ?? '';
  return new S3RequestError(status, code, message, headers['x-amz-request-id']);
}
