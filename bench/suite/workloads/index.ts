/** Every workload of the suite, in the order they run (small objects before the large data sets grow Talus's database). */
import type { Workload } from '../context.ts';
import { bulkParallel, bulkSerial } from './bulk-metadata.ts';
import { get64mEight, get64mOne, put64mEight, put64mOne } from './large-objects.ts';
import { listWorkloads } from './listing.ts';
import { listStall } from './list-stall.ts';
import { mixed } from './mixed.ts';
import { observability4kGet, observability4kPut } from './observability.ts';
import { scanWorkloads } from './scan.ts';
import { delete4k, get4k, head4k, head4kOneConnection, put4k } from './small-objects.ts';
import { get4kCores, put4kCores } from './workers.ts';
import { txnWorkloads } from '../../txn-suite.ts';
import { scaleOutWorkloads } from './scale-out.ts';
import { scaleOutList1m } from './scale-out-list.ts';

export const WORKLOADS: readonly Workload[] = [
  get4k,
  head4k,
  head4kOneConnection,
  put4k,
  delete4k,
  get4kCores,
  put4kCores,
  observability4kGet,
  observability4kPut,
  put64mOne,
  put64mEight,
  get64mOne,
  get64mEight,
  mixed,
  ...listWorkloads,
  listStall,
  bulkSerial,
  bulkParallel,
  ...scanWorkloads,
  ...txnWorkloads,
  ...scaleOutWorkloads,
  scaleOutList1m,
];

export const WORKLOAD_IDS: readonly string[] = WORKLOADS.map((workload) => workload.id);
