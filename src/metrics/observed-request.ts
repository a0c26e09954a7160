/** What the HTTP front reports of each request (src/http/server.ts), for metrics and the access log. */

/** What the front reports of each request it answered (src/metrics/ turns it into metrics and log lines). */
export interface ObservedRequest {
  requestId: string;
  /**
   * The number requestId was made from in this process (src/util/ids.ts:
   * requestId is requestIdOf(requestNumber)), so the access log writes the
   * ID without reading its string. The S3 front always sets it; anything
   * else that reports a request leaves it unset (nothing checks that it
   * matches requestId), and is logged from requestId.
   */
  requestNumber?: number;
  /** The routed S3 operation; 'Unrouted' when the request failed before routing (e.g. a bad signature on an unknown path). */
  operation: string;
  bucket: string;
  key: string;
  status: number;
  /** performance.now() at arrival, when the headers went out, and at the end (ms). */
  startedMs: number;
  headersSentMs: number;
  finishedMs: number;
  /** Request and response Content-Length (0 when unknown). */
  bytesIn: number;
  bytesOut: number;
  errorCode: string | undefined;
  /** 'anonymous', 'root', or the user's name. */
  principal: string;
  accessKeyId: string | undefined;
  remoteAddress: string;
}

export interface RequestObserver {
  started(): void;
  finished(request: ObservedRequest): void;
}
