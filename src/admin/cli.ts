/**
 * `talus admin <Operation> [--json '{…}'] [--endpoint URL]`: a client of the
 * admin API, with the caller's keys from AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY. Prints the answer as JSON; exits 1 with the error.
 */
import { parseArgs } from 'node:util';
import { AdminApiError, AdminClient } from './client.ts';
import { ADMIN_OPERATIONS } from './operations.ts';
import { ADMIN_PORT_DEFAULT } from './paths.ts';

export const ADMIN_USAGE = `       talus admin OPERATION [--json '{...}'] [--endpoint http://127.0.0.1:${ADMIN_PORT_DEFAULT}]
                                     call the admin API (keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a token from TALUS_ADMIN_TOKEN; talus admin --help lists operations)`;

export async function adminCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'string' }, endpoint: { type: 'string', default: `http://127.0.0.1:${ADMIN_PORT_DEFAULT}` }, help: { type: 'boolean', default: false } },
  });
  const operation = positionals[0];
  if (values.help || operation === undefined) {
    const list = Object.entries(ADMIN_OPERATIONS).map(([name, definition]) => `  ${name.padEnd(22)} ${definition.summary}`).join('\n');
    process.stdout.write(`${ADMIN_USAGE.trim()}\n\nOperations:\n${list}\n`);
    return operation === undefined && !values.help ? 2 : 0;
  }
  const accessKeyId = process.env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = process.env['AWS_SECRET_ACCESS_KEY'];
  const token = process.env['TALUS_ADMIN_TOKEN'];
  if (token === undefined && (accessKeyId === undefined || secretAccessKey === undefined)) {
    process.stderr.write('talus admin: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a key allowed admin:<Operation>, or TALUS_ADMIN_TOKEN to a token\n');
    return 2;
  }
  let input: unknown = {};
  if (values.json !== undefined) {
    try {
      input = JSON.parse(values.json);
    } catch {
      process.stderr.write('talus admin: --json is not valid JSON\n');
      return 2;
    }
  }
  // A token, when given, is used instead of the keys (a script given a narrow token should not fall back to wider keys).
  const client = new AdminClient(token !== undefined ? { endpoint: values.endpoint, token } : { endpoint: values.endpoint, accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! });
  try {
    const answer = await client.call(operation, input as object);
    process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof AdminApiError) {
      process.stderr.write(`talus admin ${operation}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
