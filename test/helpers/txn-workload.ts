/**
 * The read-modify-write workload of the txn tests, in-process
 * (runCounterTransaction) or as a writer process (txn-writer.ts, spawned by
 * spawnWriter).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ConflictError } from '../../src/txn/errors.ts';
import type { TxnStore } from '../../src/txn/store.ts';
import { PROJECT_ROOT } from './process.ts';
import type { CounterValue, TxnEvent } from './txn-history.ts';

/**
 * Reads one or two of `oids` and writes each with n + 1; with `readExtra`,
 * also reads one more record it does not write (the shape of write skew,
 * which only serializable isolation refuses).
 */
export async function runCounterTransaction(store: TxnStore, writer: string, i: number, oids: readonly string[], options: { readExtra?: boolean } = {}): Promise<TxnEvent> {
  const txn = await store.begin();
  const chosen = new Set<string>();
  const count = 1 + Math.floor(Math.random() * 2);
  while (chosen.size < Math.min(count, oids.length)) chosen.add(oids[Math.floor(Math.random() * oids.length)]!);
  const reads: Record<string, CounterValue | null> = {};
  const writes: Record<string, CounterValue> = {};
  for (const oid of chosen) {
    const bytes = await txn.get(oid);
    const value = bytes === undefined ? null : (JSON.parse(bytes.toString('utf8')) as CounterValue);
    reads[oid] = value;
    writes[oid] = { n: (value?.n ?? 0) + 1, by: `${writer}:${i}` };
    txn.put(oid, JSON.stringify(writes[oid]));
  }
  if (options.readExtra === true) {
    const extra = oids.find((oid) => !chosen.has(oid));
    if (extra !== undefined) {
      const bytes = await txn.get(extra);
      reads[extra] = bytes === undefined ? null : (JSON.parse(bytes.toString('utf8')) as CounterValue);
    }
  }
  const event = { writer, writeId: txn.writeId, snapshot: txn.snapshotTid, reads, writes };
  try {
    return { ...event, outcome: { commit: await txn.commit() } };
  } catch (error) {
    if (error instanceof ConflictError) return { ...event, outcome: { conflict: [...error.oids] } };
    return { ...event, outcome: { error: String(error) } };
  }
}

export interface WriterSpec {
  writer: string;
  /** file:///dir or s3://bucket/prefix */
  url: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  prefix: string;
  count: number;
  oids: readonly string[];
  groupCommit?: boolean;
  isolation?: 'snapshot' | 'serializable';
  readExtra?: boolean;
}

/** A writer process: resolves with its events (one JSON line each, printed after the commit's answer). */
export function spawnWriter(spec: WriterSpec): { events: Promise<TxnEvent[]>; kill9(): void; lines: TxnEvent[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'helpers', 'txn-writer.ts'), JSON.stringify(spec)], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: TxnEvent[] = [];
  let buffer = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, newline)) as TxnEvent);
      buffer = buffer.slice(newline + 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const events = new Promise<TxnEvent[]>((resolve, reject) => {
    child.on('close', (code, signal) => {
      if (code === 0 || signal === 'SIGKILL') resolve(lines);
      else reject(new Error(`writer ${spec.writer} exited ${code ?? signal}: ${stderr}`));
    });
  });
  return { events, lines, kill9: () => child.kill('SIGKILL') };
}
