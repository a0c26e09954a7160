/**
 * Issue 14's scan benchmark: every object of the bulk-metadata bucket (user
 * metadata on each) listed with its metadata, by
 *
 * - the seed's baseline, serial boto3: list_objects_v2 pages, one
 *   head_object per object (python3-boto3; skipped with a note if missing);
 * - `rclone lsjson -R -M` (Debian's rclone; skipped with a note if missing);
 * - `talus scan --metadata head` (list + 64 HEADs in flight);
 * - `talus scan --metadata list` (one-call metadata listing);
 * - `talus scan --metadata list` over the issue's 100 000 objects (their own
 *   prefix in the same bucket, same metadata; in --full mode the bulk objects
 *   themselves): the row the list target judges. A 10 000-object walk is
 *   over in a fraction of a second, much of it V8 compiling the scanner's
 *   hot path; the issue measured its baseline over 10 000 objects, so the
 *   baseline row stays the 10 000-object walk (serial boto3 at ~650
 *   objects/s would take 2.5 minutes over 100 000);
 *
 * each a child process walking the whole prefix, objects/s over the walk.
 * boto3 and talus scan time themselves from client creation to the last
 * object (their imports and interpreter start-up left out); rclone, which
 * reports no time, is timed from spawn to exit (Go starts in milliseconds).
 * talus scan runs bin/talus.js: the compiled dist/ the suite builds first.
 * talus scan also runs on s3rver, where auto falls back to head.
 * The targets (targets.ts) are ratios to the boto3 row of the same run.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { measure, type DriverResult, type Row } from '../measure.ts';
import { ROOT, type RunningServer } from '../servers.ts';
import { BULK_BUCKET, BULK_PREFIX, SCAN_LIST_PREFIX, ensureBulkObjects, ensureScanListObjects } from '../setup.ts';

const TALUS_BIN = join(ROOT, 'bin', 'talus.js');
const WALK_TIMEOUT_MS = 30 * 60_000;

/** Serial boto3, as the seed measured it: one list page, then one head_object per key, in order. */
const BOTO3_SCRIPT = `
import sys, time
import boto3
from botocore.config import Config
endpoint, key_id, secret, bucket, prefix = sys.argv[1:6]
s3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret,
                  region_name='us-east-1', config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}))
start = time.perf_counter()
count = 0
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix):
    for entry in page.get('Contents', []):
        s3.head_object(Bucket=bucket, Key=entry['Key'])['Metadata']
        count += 1
print(count, time.perf_counter() - start)
`;

interface ProcessRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
}

function run(command: string, args: readonly string[], env: Record<string, string | undefined> = {}): Promise<ProcessRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
    for (const name of Object.keys(childEnv)) if (childEnv[name] === undefined) delete childEnv[name];
    const child = spawn(command, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-16 * 1024)));
    const timer = setTimeout(() => child.kill('SIGKILL'), WALK_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, wallMs: performance.now() - started });
    });
  });
}

async function available(command: string, args: readonly string[]): Promise<boolean> {
  try {
    return (await run(command, args)).code === 0;
  } catch {
    return false;
  }
}

function walkResult(objects: number, expected: number, durationMs: number, failure: string | undefined): DriverResult {
  const errors = failure !== undefined ? Math.max(1, expected - objects) : Math.abs(expected - objects);
  const firstErrors = failure !== undefined ? [failure] : errors > 0 ? [`walked ${objects} objects, expected ${expected}`] : [];
  return { operations: objects, errors, firstErrors, durationMs, opsPerSecond: durationMs > 0 ? objects / (durationMs / 1000) : 0, mibPerSecond: 0, latencyMs: { p50: 0, p99: 0 } };
}

function failureOf(result: ProcessRun): string | undefined {
  return result.code === 0 ? undefined : `exit ${result.code}: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`;
}

/** What a walker walks: every object under `prefix` of BULK_BUCKET, `count` of them. */
interface WalkedObjects {
  prefix: string;
  count: number;
}

async function boto3Walk(server: RunningServer, objects: WalkedObjects): Promise<DriverResult> {
  const expected = objects.count;
  const result = await run('python3', ['-c', BOTO3_SCRIPT, server.endpoint, server.credentials.accessKeyId, server.credentials.secretAccessKey, BULK_BUCKET, objects.prefix]);
  const [count, seconds] = result.stdout.trim().split(/\s+/).map(Number);
  return walkResult(count ?? 0, expected, (seconds ?? 0) * 1000, failureOf(result));
}

async function rcloneWalk(server: RunningServer, objects: WalkedObjects): Promise<DriverResult> {
  const expected = objects.count;
  const env = {
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: server.credentials.accessKeyId,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: server.credentials.secretAccessKey,
    RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
    // rclone refuses to start with a CA bundle set for its plain-HTTP endpoint (LoadCustomCABundleError).
    AWS_CA_BUNDLE: undefined,
  };
  const result = await run('rclone', ['lsjson', '-R', '-M', '--files-only', '--no-mimetype', `bench:${BULK_BUCKET}/${objects.prefix}`], env);
  const walked = result.stdout.split('\n').filter((line) => line.startsWith('{')).length;
  return walkResult(walked, expected, result.wallMs, failureOf(result));
}

async function talusScanWalk(server: RunningServer, objects: WalkedObjects, metadata: 'head' | 'list' | 'auto'): Promise<DriverResult> {
  const expected = objects.count;
  const result = await run(process.execPath, [TALUS_BIN, 'scan', `s3://${BULK_BUCKET}/${objects.prefix}`, '--endpoint', server.endpoint, '--metadata', metadata, '--concurrency', '64'], {
    AWS_ACCESS_KEY_ID: server.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey,
  });
  // Every line is one object, and each must carry the metadata.
  const lines = result.stdout.split('\n').filter((line) => line !== '');
  const withMetadata = lines.filter((line) => line.includes('"userMetadata":{"')).length;
  // The scan's own time (its last progress line), as boto3's excludes its imports: node's start-up is not the walk.
  const done = /scan: \d+ objects in ([\d.]+) s,.*done/.exec(result.stderr);
  return walkResult(withMetadata, expected, done === null ? result.wallMs : Number(done[1]) * 1000, failureOf(result));
}

/** The bulk-metadata objects (bulkObjectCount; s3rver: peerBulkObjectCount). */
async function bulkObjects(context: SuiteContext, server: RunningServer): Promise<WalkedObjects> {
  const count = server.kind === 's3rver' ? context.settings.peerBulkObjectCount : context.settings.bulkObjectCount;
  await ensureBulkObjects(server, count);
  return { prefix: BULK_PREFIX, count };
}

/** The judged list walk's scanListObjectCount objects: the bulk ones when there are as many (--full), else their own prefix. */
async function scanListObjects(context: SuiteContext, server: RunningServer): Promise<WalkedObjects> {
  const { bulkObjectCount, scanListObjectCount } = context.settings;
  if (scanListObjectCount === bulkObjectCount) return bulkObjects(context, server);
  await ensureScanListObjects(server, scanListObjectCount);
  return { prefix: SCAN_LIST_PREFIX, count: scanListObjectCount };
}

interface ScanWorkloadOptions {
  check?: () => Promise<string | undefined>;
  onPeer: boolean;
  /** Default: bulkObjects. */
  objects?: (context: SuiteContext, server: RunningServer) => Promise<WalkedObjects>;
  walk: (server: RunningServer, objects: WalkedObjects) => Promise<DriverResult>;
}

function scanWorkload(id: string, title: string, options: ScanWorkloadOptions): Workload {
  const objectsOf = options.objects ?? bulkObjects;
  return {
    id,
    title,
    async run(context: SuiteContext): Promise<WorkloadOutcome> {
      const missing = await options.check?.();
      if (missing !== undefined) return { rows: [], skipped: missing, notes: [] };
      const rows: Row[] = [];
      const talus = await context.talus();
      const objects = await objectsOf(context, talus);
      rows.push(await measure(id, talus, 'bulk', () => options.walk(talus, objects)));
      if (options.onPeer) {
        const s3rver = await context.s3rver();
        const peerObjects = await objectsOf(context, s3rver);
        rows.push(await measure(id, s3rver, 'bulk', () => options.walk(s3rver, peerObjects)));
      }
      return { rows, notes: [`${objects.count} objects with user metadata under ${objects.prefix}; objects/s over the whole walk, one child process (see bench/suite/workloads/scan.ts)`] };
    },
  };
}

export const scanBoto3Serial = scanWorkload('scan-boto3-serial', 'serial boto3: list, then head_object each (the baseline)', {
  check: async () => ((await available('python3', ['-c', 'import boto3'])) ? undefined : 'python3 with boto3 is not installed (Debian: python3-boto3)'),
  onPeer: false,
  walk: boto3Walk,
});
export const scanRclone = scanWorkload('scan-rclone-lsjson', 'rclone lsjson -R -M', {
  check: async () => ((await available('rclone', ['version'])) ? undefined : 'rclone is not installed'),
  onPeer: false,
  walk: rcloneWalk,
});
export const scanTalusHead = scanWorkload('scan-talus-head', 'talus scan --metadata head (64 HEADs in flight)', { onPeer: false, walk: (server, objects) => talusScanWalk(server, objects, 'head') });
export const scanTalusList = scanWorkload('scan-talus-list', 'talus scan --metadata list (one-call metadata listing)', { onPeer: false, walk: (server, objects) => talusScanWalk(server, objects, 'list') });
export const scanTalusList100k = scanWorkload('scan-talus-list-100k', "talus scan --metadata list over the issue's 100 000 objects", {
  onPeer: false,
  objects: scanListObjects,
  walk: (server, objects) => talusScanWalk(server, objects, 'list'),
});
export const scanTalusAuto = scanWorkload('scan-talus-auto', 'talus scan (auto: list on Talus, head on s3rver)', { onPeer: true, walk: (server, objects) => talusScanWalk(server, objects, 'auto') });

export const scanWorkloads: readonly Workload[] = [scanBoto3Serial, scanRclone, scanTalusHead, scanTalusList, scanTalusList100k, scanTalusAuto];
