/** `talus scan s3://bucket/prefix --endpoint URL ...`: every object with its metadata, to stdout. */
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { CSV_HEADER, OUTPUT_FORMATS, formatObjects, formatProgress, type OutputFormat } from './format.ts';
import { LIST_RANGES_DEFAULT, LOOPBACK_PIPELINING_DEFAULT, METADATA_MODES, SCAN_CONCURRENCY_DEFAULT, scanBatches, type MetadataMode, type ScanProgress } from './scan.ts';
import { explicitScanCredentials } from './credentials.ts';

export const SCAN_USAGE = `Usage: talus scan s3://BUCKET[/PREFIX] --endpoint URL [--concurrency ${SCAN_CONCURRENCY_DEFAULT}] [--format jsonl|csv]
                  [--metadata auto|head|list|none] [--list-ranges 4] [--pipelining N] [--region us-east-1] [--quiet]
                  [--access-key-id ID --secret-access-key SECRET [--session-token TOKEN]]

Lists every object under the prefix with its size, ETag, last-modified time,
content type, user metadata and tags, in key order, to stdout; progress on
stderr. --metadata list reads metadata from the listing itself (metadata=true,
MinIO's extension, which Talus serves): one request per 1000 objects. head
lists, then HEADs each object, --concurrency at a time: works on any S3.
auto (default) asks the listing and falls back to head when the server
ignores it; none lists only. In list and none modes the key space is split
into up to --list-ranges ranges listed at once (found by probing, when
4 000 keys or more lie ahead), merged back in key order. --pipelining sends up to N HEADs on one connection before
their answers (default ${LOOPBACK_PIPELINING_DEFAULT} when the endpoint is on this host, else 1). --concurrency bounds
the HEADs in flight; to a plain-http endpoint on this host they are spread over one connection per core at least
(one per HEAD at most).
Credentials: the flags, else the AWS SDKs' chain (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; AWS_PROFILE and ~/.aws files;
web identity; ECS; IMDSv2).`;

/** Output is written in pieces of at least this many characters (the last one excepted). */
const WRITE_CHARS_MIN = 64 * 1024;

export async function scanCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      endpoint: { type: 'string' },
      concurrency: { type: 'string', default: String(SCAN_CONCURRENCY_DEFAULT) },
      format: { type: 'string', default: 'jsonl' },
      metadata: { type: 'string', default: 'auto' },
      'list-ranges': { type: 'string', default: String(LIST_RANGES_DEFAULT) },
      pipelining: { type: 'string' },
      region: { type: 'string', default: 'us-east-1' },
      quiet: { type: 'boolean', default: false },
      'access-key-id': { type: 'string' },
      'secret-access-key': { type: 'string' },
      'session-token': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${SCAN_USAGE}\n`);
    return 0;
  }
  const target = /^s3:\/\/([^/]+)\/?(.*)$/.exec(positionals[0] ?? '');
  if (target === null || positionals.length !== 1 || values.endpoint === undefined) {
    process.stderr.write(`${SCAN_USAGE}\n`);
    return 2;
  }
  const format = values.format as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new Error(`invalid --format ${values.format} (${OUTPUT_FORMATS.join(', ')})`);
  const metadata = values.metadata as MetadataMode;
  if (!METADATA_MODES.includes(metadata)) throw new Error(`invalid --metadata ${values.metadata} (${METADATA_MODES.join(', ')})`);
  const concurrency = Number(values.concurrency);
  const credentials = explicitScanCredentials({ accessKeyId: values['access-key-id'], secretAccessKey: values['secret-access-key'], sessionToken: values['session-token'] });
  const out = process.stdout;
  if (format === 'csv') out.write(CSV_HEADER);
  const objects = scanBatches({
    endpoint: values.endpoint,
    bucket: target[1]!,
    prefix: target[2]!,
    region: values.region,
    ...(credentials === undefined ? {} : { credentials }),
    concurrency,
    ...(values.pipelining === undefined ? {} : { pipelining: Number(values.pipelining) }),
    metadata,
    listRanges: Number(values['list-ranges']),
    ...(values.quiet ? {} : { onProgress: progressWriter(process.stderr) }),
  });
  // Batches writes (a list-mode batch is a page; a head-mode one often a single object): one write per object
  // would cost more than the object.
  let buffered = '';
  for await (const batch of objects) {
    buffered += formatObjects(batch, format);
    if (buffered.length >= WRITE_CHARS_MIN) {
      if (!out.write(buffered)) await once(out, 'drain');
      buffered = '';
    }
  }
  // The caller exits the process on return: wait until stdout has taken everything (a pipe to a busy reader
  // takes it asynchronously, and process.exit() would drop the rest).
  await new Promise<void>((resolve, reject) => out.write(buffered, (error) => (error === null || error === undefined ? resolve() : reject(error))));
  return 0;
}

/** On a terminal, one line rewritten in place each second; otherwise a line every PROGRESS_LINE_INTERVAL_MS, and the last. */
const PROGRESS_LINE_INTERVAL_MS = 10_000;

function progressWriter(stream: NodeJS.WriteStream): (progress: ScanProgress) => void {
  let lastLineMs = 0;
  return (progress) => {
    const line = formatProgress(progress);
    if (stream.isTTY) {
      stream.write(`\r\x1b[K${progress.done ? line : line.trimEnd()}`);
    } else if (progress.done || progress.elapsedMs - lastLineMs >= PROGRESS_LINE_INTERVAL_MS) {
      lastLineMs = progress.elapsedMs;
      stream.write(line);
    }
  };
}
