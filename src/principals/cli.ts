/**
 * `talus users …`, `talus keys …`, `talus policy …`: managing principals on a
 * data directory, while the server runs or not (another connection to the
 * same WAL database; the server picks changes up within PRINCIPAL_REFRESH_MS).
 */
import { parseArgs } from 'node:util';
import { describePolicy, policyDocument, readPolicyArgument } from './policy-source.ts';
import { ROOT_DISPLAY_NAME } from './principal-cache.ts';
import { type Credentials, PrincipalError, Principals } from './principals.ts';

export const PRINCIPALS_USAGE = `       talus users add NAME [DATA_DIR] [--policy readwrite|readonly|writeonly|consoleAdmin|FILE.json] [--email ADDRESS]
                                     create a user with one access key (printed)
       talus users list [DATA_DIR]   users (and root) with canonical ID, policy, email, key count
       talus users remove NAME [DATA_DIR]
                                     remove a user and its keys (refused while it owns buckets)
       talus keys add [DATA_DIR] [--user NAME] [--expires 30d] [--policy readwrite|readonly|writeonly|consoleAdmin|FILE.json]
                                     create an access key (root's without --user; printed)
       talus keys list [DATA_DIR] [--user NAME]
                                     access key ID, owner, state, expiry, policy
       talus keys disable|enable|remove ACCESS_KEY_ID [DATA_DIR]
       talus policy set --user NAME | --key ACCESS_KEY_ID readwrite|readonly|writeonly|consoleAdmin|FILE.json|none [DATA_DIR]
       talus policy show --user NAME | --key ACCESS_KEY_ID [DATA_DIR]`;

const DEFAULT_DATA_DIR = './data';
const DURATION = /^(\d{1,6})([smhdw])$/;
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** Beyond a century an expiry means nothing; it also keeps the time far from Number's limits. */
const EXPIRY_MS_MAX = 36_500 * 86_400_000;
/** Clears a policy in `talus policy set`. */
const NO_POLICY = 'none';

class UsageError extends Error {}

/** `30d`, `12h`, `90m`, `45s`, `2w`: how long from now a key works. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text);
  const ms = match === null ? NaN : Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  if (!(ms > 0) || ms > EXPIRY_MS_MAX) throw new PrincipalError(`invalid --expires ${text}: a number and a unit (s, m, h, d, w), e.g. 30d`);
  return ms;
}

/** The two lines the server prints for root at start-up (without its indentation): scripts read both alike. */
export function credentialLines(credentials: Credentials): string {
  return `AccessKeyId:     ${credentials.accessKeyId}\nSecretAccessKey: ${credentials.secretAccessKey}\n`;
}

function columns(rows: readonly (readonly string[])[]): string {
  return rows.map((row) => `${row.join('\t')}\n`).join('');
}

export async function principalsCommand(command: 'users' | 'keys' | 'policy', args: string[]): Promise<number> {
  try {
    if (command === 'users') return await users(args);
    if (command === 'keys') return await keys(args);
    return await policy(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`talus ${command}: ${error.message}\nUsage:\n${PRINCIPALS_USAGE}\n`);
    return 2;
  }
}

function parse(args: string[], options: Record<string, { type: 'string' }>, positionalsMax: number): { values: Record<string, string | undefined>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (parsed.positionals.length > positionalsMax) throw new UsageError(`unexpected argument ${parsed.positionals[positionalsMax]}`);
  return { values: parsed.values as Record<string, string | undefined>, positionals: parsed.positionals };
}

async function users(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action === 'add') {
    const { values, positionals } = parse(rest, { policy: { type: 'string' }, email: { type: 'string' } }, 2);
    const [name, dataDir = DEFAULT_DATA_DIR] = positionals;
    if (name === undefined) throw new UsageError('users add needs a NAME');
    const policyText = values['policy'] === undefined ? null : await readPolicyArgument(values['policy']);
    const { credentials } = await Principals.withDataDir(dataDir, (principals) => principals.addUser(name, { policy: policyText, email: values['email'] ?? null }), { create: true });
    process.stdout.write(credentialLines(credentials));
    return 0;
  }
  if (action === 'list') {
    const { positionals } = parse(rest, {}, 1);
    const rows = await Principals.withDataDir(positionals[0] ?? DEFAULT_DATA_DIR, async (principals) => {
      const keys = await principals.listKeys();
      const count = (owner: string): string => String(keys.filter((key) => key.owner === owner).length);
      const list = await principals.listUsers();
      return [
        [ROOT_DISPLAY_NAME, await principals.rootCanonicalId(), '-', '-', count(ROOT_DISPLAY_NAME)],
        ...list.map((user) => [user.name, user.canonicalId, describePolicy(user.policy), user.email ?? '-', count(user.name)]),
      ];
    });
    process.stdout.write(columns(rows));
    return 0;
  }
  if (action === 'remove') {
    const { positionals } = parse(rest, {}, 2);
    const [name, dataDir = DEFAULT_DATA_DIR] = positionals;
    if (name === undefined) throw new UsageError('users remove needs a NAME');
    await Principals.withDataDir(dataDir, (principals) => principals.removeUser(name));
    return 0;
  }
  throw new UsageError(action === undefined ? 'users needs add, list or remove' : `unknown users command ${action}`);
}

async function keys(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action === 'add') {
    const { values, positionals } = parse(rest, { user: { type: 'string' }, expires: { type: 'string' }, policy: { type: 'string' } }, 1);
    const expiresMs = values['expires'] === undefined ? null : Date.now() + parseDuration(values['expires']);
    const policyText = values['policy'] === undefined ? null : await readPolicyArgument(values['policy']);
    const credentials = await Principals.withDataDir(positionals[0] ?? DEFAULT_DATA_DIR, (principals) =>
      principals.addKey({ userName: values['user'], policy: policyText, expiresMs }), { create: true });
    process.stdout.write(credentialLines(credentials));
    return 0;
  }
  if (action === 'list') {
    const { values, positionals } = parse(rest, { user: { type: 'string' } }, 1);
    const now = Date.now();
    const rows = await Principals.withDataDir(positionals[0] ?? DEFAULT_DATA_DIR, async (principals) => {
      if (values['user'] !== undefined) await principals.user(values['user']);
      return (await principals.listKeys())
        .filter((key) => values['user'] === undefined || key.owner === values['user'])
        .map((key) => [
          key.accessKeyId,
          key.owner,
          !key.enabled ? 'disabled' : key.expiresMs !== null && key.expiresMs <= now ? 'expired' : 'enabled',
          key.expiresMs === null ? '-' : new Date(key.expiresMs).toISOString(),
          describePolicy(key.policy),
        ]);
    });
    process.stdout.write(columns(rows));
    return 0;
  }
  if (action === 'disable' || action === 'enable' || action === 'remove') {
    const { positionals } = parse(rest, {}, 2);
    const [accessKeyId, dataDir = DEFAULT_DATA_DIR] = positionals;
    if (accessKeyId === undefined) throw new UsageError(`keys ${action} needs an ACCESS_KEY_ID`);
    await Principals.withDataDir(dataDir, (principals) =>
      action === 'remove' ? principals.removeKey(accessKeyId) : principals.setKeyEnabled(accessKeyId, action === 'enable'));
    return 0;
  }
  throw new UsageError(action === undefined ? 'keys needs add, list, disable, enable or remove' : `unknown keys command ${action}`);
}

function target(values: Record<string, string | undefined>): { user: string } | { key: string } {
  const user = values['user'];
  const key = values['key'];
  if ((user === undefined) === (key === undefined)) throw new UsageError('name either --user NAME or --key ACCESS_KEY_ID');
  return user !== undefined ? { user } : { key: key as string };
}

async function policy(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  const options = { user: { type: 'string' }, key: { type: 'string' } } as const;
  if (action === 'set') {
    const { values, positionals } = parse(rest, options, 2);
    const which = target(values);
    const [argument, dataDir = DEFAULT_DATA_DIR] = positionals;
    if (argument === undefined) throw new UsageError(`policy set needs a policy (readwrite, readonly, writeonly, FILE.json, or ${NO_POLICY})`);
    const text = argument === NO_POLICY ? null : await readPolicyArgument(argument);
    await Principals.withDataDir(dataDir, (principals) => ('user' in which ? principals.setUserPolicy(which.user, text) : principals.setKeyPolicy(which.key, text)));
    return 0;
  }
  if (action === 'show') {
    const { values, positionals } = parse(rest, options, 1);
    const which = target(values);
    const text = await Principals.withDataDir(positionals[0] ?? DEFAULT_DATA_DIR, async (principals) =>
      'user' in which ? (await principals.user(which.user)).policy : principals.keyPolicy(which.key));
    process.stdout.write(text === null ? `${NO_POLICY}\n` : `${policyDocument(text)}\n`);
    return 0;
  }
  throw new UsageError(action === undefined ? 'policy needs set or show' : `unknown policy command ${action}`);
}
