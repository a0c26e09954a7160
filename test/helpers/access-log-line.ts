/** The access log's line as documented (docs/ADMIN.md), for tests of src/metrics/access-log.ts's encoders. */
import type { ObservedRequest } from '../../src/metrics/observed-request.ts';

/**
 * JSON.stringify of the documented fields in their order, optional ones only
 * when present: the time, route and caller, then the numbers, then what
 * changes with each request.
 */
export function expectedLine(entry: ObservedRequest, timeMs: number, droppedBefore = 0): string {
  const fields: Record<string, unknown> = {
    time: new Date(timeMs).toISOString(), operation: entry.operation, bucket: entry.bucket, principal: entry.principal, remoteAddress: entry.remoteAddress,
  };
  if (entry.accessKeyId !== undefined) fields['accessKeyId'] = entry.accessKeyId;
  fields['status'] = entry.status;
  fields['bytesIn'] = entry.bytesIn;
  fields['bytesOut'] = entry.bytesOut;
  fields['requestId'] = entry.requestId;
  fields['key'] = entry.key;
  fields['durationMs'] = Math.round((entry.finishedMs - entry.startedMs) * 1000) / 1000;
  if (entry.errorCode !== undefined) fields['errorCode'] = entry.errorCode;
  if (droppedBefore > 0) fields['droppedBefore'] = droppedBefore;
  return JSON.stringify(fields);
}
