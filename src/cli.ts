/** The `talus` command. */
import { parseArgs } from 'node:util';
import { startTalus } from './talus.ts';

const USAGE = `Usage: talus server [DATA_DIR] [--port 9000] [--address 127.0.0.1] [--domain example.com] [--region us-east-1]

Serves the S3 API from DATA_DIR (default ./data). Credentials come from
TALUS_ROOT_USER / TALUS_ROOT_PASSWORD, or are generated on first start and
kept in the data directory.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'server') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      port: { type: 'string', default: '9000' },
      address: { type: 'string', default: '0.0.0.0' },
      domain: { type: 'string' },
      region: { type: 'string', default: 'us-east-1' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}`);
  const talus = await startTalus({
    dataDir: positionals[0] ?? './data',
    port,
    address: values.address,
    domain: values.domain,
    region: values.region,
    rootAccessKeyId: process.env['TALUS_ROOT_USER'],
    rootSecretAccessKey: process.env['TALUS_ROOT_PASSWORD'],
  });
  process.stdout.write(
    `Talus S3 server listening on ${talus.url}\n  AccessKeyId:     ${talus.credentials.accessKeyId}\n  SecretAccessKey: ${talus.credentials.secretAccessKey}\n`,
  );
  const stop = (signal: string): void => {
    process.stdout.write(`${signal}: finishing in-flight requests\n`);
    talus.close().then(() => process.exit(0), (error) => {
      process.stderr.write(`shutdown failed: ${String(error)}\n`);
      process.exit(1);
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`talus: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
