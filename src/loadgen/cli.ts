/**
 * `talus bench`: the load generator against any S3 endpoint. Progress goes to
 * stderr once a second, the final table (or --json report) to stdout.
 * Exit code: 0 when every request succeeded, 1 when some failed, 2 on bad usage.
 */
import { parseArgs } from 'node:util';
import { S3Client } from '../client/s3-client.ts';
import { runLoad } from './run-load.ts';
import { formatProgress, formatReport } from './report.ts';
import { formatSizeRange, parseDuration, parseSizeRange } from './sizes.ts';
import { normalizeOptions } from './validate.ts';
import { KEY_COUNT_DEFAULT, KEY_PREFIX_DEFAULT, LOAD_OPERATIONS, WORKLOADS, type LoadOperation, type LoadOptions, type Workload } from './types.ts';

export const BENCH_USAGE = `Usage: talus bench --endpoint URL --bucket NAME [options]
  --endpoint URL          S3 endpoint, e.g. http://127.0.0.1:9000 (path-style addressing)
  --access-key K          default $AWS_ACCESS_KEY_ID
  --secret-key S          default $AWS_SECRET_ACCESS_KEY
  --region R              default $AWS_REGION or us-east-1
  --bucket NAME           created if missing
  --workload W            put | get | head | delete | list | mixed (default put)
  --size S                object size, e.g. 4KiB, or a range 4KiB-10MiB (log-uniform; default 4KiB)
  --concurrency N         requests in flight and connections (default 64)
  --duration D            e.g. 10s, 500ms, 2m (default 10s unless --operations is given)
  --operations N          stop after N operations
  --keys N                objects prepared for get/head/delete/list/mixed (default ${KEY_COUNT_DEFAULT})
  --prefix P              key prefix (default ${KEY_PREFIX_DEFAULT}); also what list lists
  --delimiter D           list: delimiter
  --max-keys N            list: page size (1-1000)
  --mix get=45,put=15,... mixed: operation weights (default get=45,put=15,head=30,delete=10)
  --no-prepare            use objects prepared by an earlier run with the same --prefix and --keys
  --json                  print the report as JSON`;

const OPTIONS = {
  endpoint: { type: 'string' },
  'access-key': { type: 'string' },
  'secret-key': { type: 'string' },
  region: { type: 'string' },
  bucket: { type: 'string' },
  workload: { type: 'string', default: 'put' },
  size: { type: 'string', default: '4KiB' },
  concurrency: { type: 'string', default: '64' },
  duration: { type: 'string' },
  operations: { type: 'string' },
  keys: { type: 'string', default: String(KEY_COUNT_DEFAULT) },
  prefix: { type: 'string', default: KEY_PREFIX_DEFAULT },
  delimiter: { type: 'string' },
  'max-keys': { type: 'string' },
  mix: { type: 'string' },
  'no-prepare': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;

class UsageError extends Error {}

export async function benchCommand(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseBenchArgs>;
  try {
    parsed = parseBenchArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError || error instanceof RangeError || error instanceof TypeError)) throw error;
    process.stderr.write(`talus bench: ${error.message}\n\n${BENCH_USAGE}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${BENCH_USAGE}\n`);
    return 0;
  }
  const { client, options, json } = parsed;
  const aborter = new AbortController();
  const onSigint = (): void => aborter.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  try {
    await client.createBucket(options.bucket);
    announcePreparation(options);
    const progress = progressWriter();
    const report = await runLoad({ ...options, signal: aborter.signal, onProgress: progress.write });
    progress.end();
    process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    return report.total.errors === 0 ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await client.close();
  }
}

function parseBenchArgs(args: string[]): 'help' | { client: S3Client; options: LoadOptions & { bucket: string }; json: boolean } {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const endpoint = required(values.endpoint, '--endpoint');
  const bucket = required(values.bucket, '--bucket');
  const accessKeyId = required(values['access-key'] ?? process.env['AWS_ACCESS_KEY_ID'], '--access-key (or AWS_ACCESS_KEY_ID)');
  const secretAccessKey = required(values['secret-key'] ?? process.env['AWS_SECRET_ACCESS_KEY'], '--secret-key (or AWS_SECRET_ACCESS_KEY)');
  const workload = values.workload as Workload;
  if (!WORKLOADS.includes(workload)) throw new UsageError(`--workload must be one of ${WORKLOADS.join(', ')}`);
  const concurrency = integer(values.concurrency, '--concurrency');
  const operations = values.operations === undefined ? undefined : integer(values.operations, '--operations');
  const durationMs = values.duration !== undefined ? parseDuration(values.duration) : operations === undefined ? 10_000 : undefined;
  const maxKeys = values['max-keys'] === undefined ? undefined : integer(values['max-keys'], '--max-keys');
  const keyCount = integer(values.keys, '--keys');
  const size = parseSizeRange(values.size);
  const mix = values.mix === undefined ? undefined : parseMix(values.mix);
  const region = values.region ?? process.env['AWS_REGION'] ?? 'us-east-1';
  // A Pool opens no connection before its first request: nothing to clean up if a check below fails.
  const client = new S3Client({ endpoint, region, accessKeyId, secretAccessKey, connections: concurrency });
  const options: LoadOptions & { bucket: string } = {
    client,
    bucket,
    workload,
    size,
    concurrency,
    durationMs,
    operations,
    keyPrefix: values.prefix,
    keyCount,
    list: { delimiter: values.delimiter, maxKeys },
    prepare: !values['no-prepare'],
    mix,
  };
  normalizeOptions(options); // every bound checked before the bucket is touched
  return { client, options, json: values.json };
}

function required(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new UsageError(`${name} is required`);
  return value;
}

function integer(text: string, name: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new UsageError(`${name} must be a whole number, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** 'get=45,put=15' */
function parseMix(text: string): Partial<Record<LoadOperation, number>> {
  const mix: Partial<Record<LoadOperation, number>> = {};
  for (const part of text.split(',')) {
    const [name, weight, extra] = part.split('=');
    if (!LOAD_OPERATIONS.includes(name as LoadOperation) || weight === undefined || extra !== undefined || !/^\d+(\.\d+)?$/.test(weight)) {
      throw new UsageError(`--mix takes operation=weight pairs such as get=45,put=15 (operations: ${LOAD_OPERATIONS.join(', ')})`);
    }
    mix[name as LoadOperation] = Number(weight);
  }
  return mix;
}

function announcePreparation(options: LoadOptions): void {
  if (options.workload === 'put' || options.prepare === false) return;
  process.stderr.write(`preparing ${options.keyCount} objects of ${formatSizeRange(options.size)} under ${options.keyPrefix} (not timed)\n`);
}

/** One progress line a second: rewritten in place on a terminal, one line each otherwise. */
function progressWriter(): { write: (progress: Parameters<typeof formatProgress>[0]) => void; end: () => void } {
  const terminal = process.stderr.isTTY === true;
  let written = false;
  return {
    write: (progress) => {
      written = true;
      process.stderr.write(terminal ? `\r${formatProgress(progress)}\x1b[K` : `${formatProgress(progress)}\n`);
    },
    end: () => {
      if (terminal && written) process.stderr.write('\n');
    },
  };
}
