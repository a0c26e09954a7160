/** The front's RequestObserver: request metrics always, the access log when one is open. */
import type { AccessLog } from './access-log.ts';
import type { RequestObserver } from './observed-request.ts';
import type { RequestMetrics } from './request-metrics.ts';

export function requestObserver(metrics: RequestMetrics, accessLog: AccessLog | undefined): RequestObserver {
  if (accessLog === undefined) return { started: () => metrics.started(), finished: (request) => metrics.finished(request) };
  return {
    started: () => metrics.started(),
    finished: (request) => {
      metrics.finished(request);
      accessLog.write(request);
    },
  };
}
