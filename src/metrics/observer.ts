/**
 * The front's RequestObserver: request metrics always; the access log when
 * one is open; `onRefused` for each request refused for who sent it (the
 * audit log's S3 entries).
 */
import type { AccessLog } from './access-log.ts';
import type { ObservedRequest, RequestObserver } from './observed-request.ts';
import { AUTH_FAILURES, type RequestMetrics } from './request-metrics.ts';

export function requestObserver(metrics: RequestMetrics, accessLog: AccessLog | undefined, onRefused?: (request: ObservedRequest) => void): RequestObserver {
  return {
    started: () => metrics.started(),
    finished: (request) => {
      metrics.finished(request);
      accessLog?.write(request);
      if (onRefused !== undefined && request.errorCode !== undefined && AUTH_FAILURES.has(request.errorCode)) onRefused(request);
    },
  };
}
