/**
 * Linearizability across nodes: 8 clients run random conditional operations
 * (If-None-Match: * PUT, If-Match PUT, plain PUT, GET, DELETE) on a few keys
 * through 3 Talus nodes sharing one PostgreSQL, each operation recorded with
 * its invocation and response times; a small checker (Wing & Gong's search
 * with memoization, per key: keys are independent registers) then looks for
 * an order of the operations, consistent with real time, in which every
 * answer is what one S3 object would have answered. An operation without a
 * definite answer (an error, a 5xx) may have taken effect or not.
 * Partition: where network namespaces can be made (root, `ip netns`), the
 * third node runs in its own namespace behind a veth pair, and its link goes
 * down for 10 s in the middle of the run: requests to it get no answer
 * (their outcome unknown), its transactions in flight stall until
 * PostgreSQL ends them (idle_in_transaction_session_timeout), and still
 * nothing acknowledged is lost and no key gets two winners.
 * The checker is itself tested: it accepts a sequential history and rejects
 * the histories a broken per-key lock produces (two If-None-Match winners; a
 * write lost behind a stale If-Match).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';
import { CLI, PROJECT_ROOT, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';
import { signedRequest } from './helpers/raw.ts';

const NODES = 3;
const CLIENTS = 8;
const KEYS = ['k0', 'k1', 'k2'];
const RUN_MS = 6_000;
/** With a partition: the run, and when the namespaced node's link is down within it. */
const PARTITION_RUN_MS = 16_000;
const PARTITION_FROM_MS = 2_000;
const PARTITION_MS = 10_000;
/** A request the partition swallowed is given up (outcome unknown) after this long. */
const REQUEST_TIMEOUT_MS = 25_000;
const run = promisify(execFile);

/** What one operation asked for. Values are unique per write, so a value names the write (and its ETag). */
type Call =
  | { kind: 'put'; value: string }
  | { kind: 'create'; value: string } // If-None-Match: *
  | { kind: 'replace'; expected: string; value: string } // If-Match: ETag of `expected`
  | { kind: 'get' }
  | { kind: 'delete' };

/** What it got: a definite outcome, or unknown (the operation may or may not have happened). */
type Outcome = { status: 'ok'; value?: string | null } | { status: 'precondition-failed' } | { status: 'no-such-key' } | { status: 'unknown' };

interface Operation {
  call: Call;
  outcome: Outcome;
  invokedMs: number;
  /** Infinity for an unknown outcome: it may take effect any time after its invocation. */
  returnedMs: number;
}

/** The register one S3 key is: its current value, or null when absent. Returns the next state, or undefined if `outcome` is impossible. */
function step(state: string | null, call: Call, outcome: Outcome): { state: string | null } | undefined {
  const effect = ((): { state: string | null; outcome: Outcome } => {
    switch (call.kind) {
      case 'put':
        return { state: call.value, outcome: { status: 'ok' } };
      case 'create':
        return state === null ? { state: call.value, outcome: { status: 'ok' } } : { state, outcome: { status: 'precondition-failed' } };
      case 'replace':
        if (state === null) return { state, outcome: { status: 'no-such-key' } };
        return state === call.expected ? { state: call.value, outcome: { status: 'ok' } } : { state, outcome: { status: 'precondition-failed' } };
      case 'get':
        return { state, outcome: { status: 'ok', value: state } };
      case 'delete':
        return { state: null, outcome: { status: 'ok' } };
    }
  })();
  if (outcome.status === 'unknown') return { state: effect.state };
  if (outcome.status !== effect.outcome.status) return undefined;
  if (call.kind === 'get' && outcome.status === 'ok' && outcome.value !== (effect.outcome as { value?: string | null }).value) return undefined;
  return { state: effect.state };
}

/**
 * Wing & Gong: repeatedly pick an operation that no pending one returned
 * before (a "minimal" one), apply it if the model allows its answer, and
 * backtrack on failure; (linearized set, state) pairs already explored are
 * not explored again. Unknown outcomes may also never happen.
 */
export function linearizable(history: readonly Operation[]): boolean {
  const ops = [...history].sort((a, b) => a.invokedMs - b.invokedMs);
  const definite = ops.filter((op) => op.outcome.status !== 'unknown').length;
  const seen = new Set<string>();
  const done = new Array<boolean>(ops.length).fill(false);
  const search = (state: string | null, linearizedDefinite: number): boolean => {
    if (linearizedDefinite === definite) return true;
    const memo = `${done.map((d) => (d ? '1' : '0')).join('')}|${state}`;
    if (seen.has(memo)) return false;
    seen.add(memo);
    let earliestReturn = Infinity;
    for (let i = 0; i < ops.length; i++) if (!done[i]) earliestReturn = Math.min(earliestReturn, ops[i]!.returnedMs);
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (done[i]) continue;
      if (op.invokedMs > earliestReturn) break; // sorted by invocation: none later is minimal
      const next = step(state, op.call, op.outcome);
      if (next === undefined) continue;
      done[i] = true;
      if (search(next.state, linearizedDefinite + (op.outcome.status === 'unknown' ? 0 : 1))) return true;
      done[i] = false;
    }
    return false;
  };
  return search(null, 0);
}

test('the checker accepts a sequential history and rejects what a broken per-key lock produces', () => {
  const at = (invokedMs: number, returnedMs: number, call: Call, outcome: Outcome): Operation => ({ call, outcome, invokedMs, returnedMs });
  const ok: Outcome = { status: 'ok' };
  assert.ok(linearizable([
    at(0, 10, { kind: 'create', value: 'a' }, ok),
    at(5, 20, { kind: 'create', value: 'b' }, { status: 'precondition-failed' }),
    at(21, 30, { kind: 'replace', expected: 'a', value: 'c' }, ok),
    at(31, 40, { kind: 'get' }, { status: 'ok', value: 'c' }),
    at(35, Infinity, { kind: 'delete' }, { status: 'unknown' }),
    at(41, 50, { kind: 'replace', expected: 'c', value: 'd' }, ok),
  ]));
  // Two concurrent If-None-Match: * both acknowledged: the double winner of a check-then-write without the lock.
  assert.equal(linearizable([
    at(0, 10, { kind: 'create', value: 'a' }, ok),
    at(1, 11, { kind: 'create', value: 'b' }, ok),
  ]), false);
  // Both If-Match on the same ETag acknowledged: one of the two writes was lost.
  assert.equal(linearizable([
    at(0, 5, { kind: 'put', value: 'a' }, ok),
    at(10, 20, { kind: 'replace', expected: 'a', value: 'b' }, ok),
    at(11, 21, { kind: 'replace', expected: 'a', value: 'c' }, ok),
    at(30, 31, { kind: 'get' }, { status: 'ok', value: 'c' }),
  ]), false);
  // A stale read after a completed write.
  assert.equal(linearizable([
    at(0, 5, { kind: 'put', value: 'a' }, ok),
    at(6, 9, { kind: 'put', value: 'b' }, ok),
    at(10, 12, { kind: 'get' }, { status: 'ok', value: 'a' }),
  ]), false);
});

/** A network namespace joined to the host by a veth pair; `cut` takes the link down, `heal` brings it back. */
interface Namespace {
  name: string;
  hostAddress: string;
  nodeAddress: string;
  cut(): Promise<void>;
  heal(): Promise<void>;
  remove(): Promise<void>;
}

/** Undefined where namespaces cannot be made (not root, no iproute2, a container without CAP_NET_ADMIN). */
async function makeNamespace(): Promise<Namespace | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = process.pid % 250;
  const name = `talus-part-${process.pid}`;
  const hostEnd = `tph${process.pid % 100000}`;
  const nodeEnd = `tpn${process.pid % 100000}`;
  const hostAddress = `10.231.${id}.1`;
  const nodeAddress = `10.231.${id}.2`;
  const ip = (...args: string[]) => run('ip', args);
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nodeEnd);
    await ip('link', 'set', nodeEnd, 'netns', name);
    await ip('addr', 'add', `${hostAddress}/24`, 'dev', hostEnd);
    await ip('link', 'set', hostEnd, 'up');
    await ip('netns', 'exec', name, 'ip', 'addr', 'add', `${nodeAddress}/24`, 'dev', nodeEnd);
    await ip('netns', 'exec', name, 'ip', 'link', 'set', nodeEnd, 'up');
    await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (error) {
    await ip('netns', 'del', name).catch(() => undefined);
    await ip('link', 'del', hostEnd).catch(() => undefined);
    console.log(`# no partition: cannot make a network namespace (${String(error).split('\n')[0]})`);
    return undefined;
  }
  return {
    name, hostAddress, nodeAddress,
    // The namespace's end goes down: the host keeps its route (marked linkdown) and drops what it sends there
    // silently, as a cut cable does. Taking the host's end down would remove the route, and packets would
    // leak to the default gateway.
    cut: async () => void (await ip('netns', 'exec', name, 'ip', 'link', 'set', nodeEnd, 'down')),
    heal: async () => void (await ip('netns', 'exec', name, 'ip', 'link', 'set', nodeEnd, 'up')),
    remove: async () => {
      await ip('netns', 'del', name).catch(() => undefined);
      await ip('link', 'del', hostEnd).catch(() => undefined);
    },
  };
}

/** A node started inside the namespace (`ip netns exec` execs node itself, so the child is the server). */
async function startNamespacedNode(namespace: Namespace, dataDir: string, args: readonly string[]): Promise<ServerProcess> {
  const child = spawn('ip', ['netns', 'exec', namespace.name, process.execPath, '--import', 'tsx', CLI, 'server', dataDir, '--port', '9000', '--address', namespace.nodeAddress, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, TALUS_ROOT_USER: ACCESS_KEY_ID, TALUS_ROOT_PASSWORD: SECRET_ACCESS_KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`namespaced node not ready:\n${output}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then(() => reject(new Error(`namespaced node exited:\n${output}`)));
  });
  return {
    child, url, port: 9000, dataDir, exited, output: () => output,
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const skip = await postgresUnavailable();
if (skip !== undefined) console.log(`# skipped: ${skip}`);
let root: string;
let pg: TestPostgres | undefined;
let namespace: Namespace | undefined;
const nodes: ServerProcess[] = [];

before(async () => {
  if (skip !== undefined) return;
  root = await mkdtemp(join(tmpdir(), 'talus-history-'));
  namespace = await makeNamespace();
  pg = await startTestPostgres(namespace === undefined ? {} : { listenAddresses: [namespace.hostAddress] });
  process.env['TALUS_SECRET_KEY'] = randomBytes(32).toString('base64');
  await writeFile(join(root, 'talus.toml'), ['[backends.shared]', 'type = "directory"', `path = "${join(root, 'shared')}"`, '[placements.one]', 'type = "single"', 'backend = "shared"', '[defaults]', 'placement = "one"'].join('\n'));
  const args = (url: string) => ['--meta', url, '--config', join(root, 'talus.toml')];
  for (let i = 0; i < NODES - 1; i++) nodes.push(await startServerProcess(join(root, `node${i}`), undefined, args(pg.url)));
  nodes.push(namespace === undefined
    ? await startServerProcess(join(root, 'node-last'), undefined, args(pg.url))
    : await startNamespacedNode(namespace, join(root, 'node-last'), args(pg.url.replace('@127.0.0.1:', `@${namespace.hostAddress}:`))));
});

after(async () => {
  await namespace?.heal().catch(() => undefined);
  await Promise.all(nodes.map((node) => node.kill9().catch(() => undefined)));
  await namespace?.remove();
  await pg?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

const md5 = (text: string): string => createHash('md5').update(text).digest('hex');

test(`random conditional operations from ${CLIENTS} clients over ${NODES} nodes are linearizable per key, across a partition of one node`, { skip }, async () => {
  assert.equal((await signedRequest(nodes[0]!.url, { method: 'PUT', path: '/history' })).status, 200);
  const histories = new Map<string, Operation[]>(KEYS.map((key) => [key, []]));
  /** Every value ever written, by ETag: a GET answers with one of them. */
  const written = new Map<string, string>();
  const runMs = namespace === undefined ? RUN_MS : PARTITION_RUN_MS;
  const deadline = Date.now() + runMs;
  const partition = namespace === undefined ? Promise.resolve() : (async () => {
    await new Promise((resolve) => setTimeout(resolve, PARTITION_FROM_MS));
    await namespace!.cut();
    await new Promise((resolve) => setTimeout(resolve, PARTITION_MS));
    await namespace!.heal();
  })();
  let counter = 0;
  const client = async (c: number): Promise<void> => {
    while (Date.now() < deadline) {
      const node = nodes[Math.floor(Math.random() * NODES)]!;
      const key = KEYS[Math.floor(Math.random() * KEYS.length)]!;
      const path = `/history/${key}`;
      const value = `c${c}-${counter++}-${randomBytes(4).toString('hex')}`;
      const known = [...written.values()];
      const roll = Math.random();
      const call: Call = roll < 0.25 ? { kind: 'create', value }
        : roll < 0.5 && known.length > 0 ? { kind: 'replace', expected: known[Math.floor(Math.random() * known.length)]!, value }
        : roll < 0.6 ? { kind: 'put', value }
        : roll < 0.7 ? { kind: 'delete' }
        : { kind: 'get' };
      if ('value' in call) written.set(md5(call.value), call.value);
      const invokedMs = performance.now();
      let outcome: Outcome;
      try {
        const headers: Record<string, string> = call.kind === 'create' ? { 'if-none-match': '*' } : call.kind === 'replace' ? { 'if-match': `"${md5(call.expected)}"` } : {};
        const method = call.kind === 'get' ? 'GET' : call.kind === 'delete' ? 'DELETE' : 'PUT';
        const response = await Promise.race([
          signedRequest(node.url, { method, path, headers, ...('value' in call ? { body: call.value } : {}) }),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer')), REQUEST_TIMEOUT_MS).unref()),
        ]);
        if (response.status === 200 || response.status === 204) outcome = call.kind === 'get' ? { status: 'ok', value: response.body } : { status: 'ok' };
        else if (response.status === 412) outcome = { status: 'precondition-failed' };
        else if (response.status === 404) outcome = call.kind === 'get' ? { status: 'ok', value: null } : { status: 'no-such-key' };
        else outcome = { status: 'unknown' };
      } catch {
        outcome = { status: 'unknown' };
      }
      const returnedMs = outcome.status === 'unknown' ? Infinity : performance.now();
      histories.get(key)!.push({ call, outcome, invokedMs, returnedMs });
    }
  };
  await Promise.all([partition, ...Array.from({ length: CLIENTS }, (_, c) => client(c))]);
  for (const [key, history] of histories) {
    const conditionalWins = history.filter((op) => (op.call.kind === 'create' || op.call.kind === 'replace') && op.outcome.status === 'ok').length;
    assert.ok(history.length > 10 && conditionalWins > 0, `${key}: ${history.length} operations, ${conditionalWins} conditional writes won`);
    const t0 = performance.now();
    assert.ok(linearizable(history), `${key}: the history of ${history.length} operations is not linearizable`);
    console.log(`# ${key}: ${history.length} operations, checked in ${Math.round(performance.now() - t0)} ms`);
  }
  // Healed, the partitioned node serves again, and what every node reads is the same. The partitioned
  // node's process survives the partition (postgres 3.4.x could crash it: porsager/postgres#1208).
  const partitioned = nodes.at(-1)!;
  assert.ok(partitioned.child.exitCode === null && partitioned.child.signalCode === null, `the partitioned node died:\n${partitioned.output().slice(-3000)}`);
  const deadlineHealed = Date.now() + 30_000;
  for (;;) {
    // An error's body carries its own request ID: what is compared is the status and the body (200) or the error code.
    const answers = await Promise.all(nodes.map((node) => signedRequest(node.url, { method: 'GET', path: `/history/${KEYS[0]}` }).then(
      (response) => `${response.status} ${response.status === 200 ? response.body : (/<Code>([^<]*)<\/Code>/.exec(response.body)?.[1] ?? response.body)}`,
      (error: unknown) => `no answer (${String(error)})`,
    )));
    if (answers.every((answer) => answer === answers[0] && !answer.startsWith('no answer'))) break;
    assert.ok(Date.now() < deadlineHealed, `nodes disagree after the partition: ${answers.join(' | ')}\n${nodes.at(-1)!.output().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
});
