/**
 * What the suite must undo whatever happens: child servers to stop and
 * temporary directories to remove. Each resource registers its own cleanup
 * when created and unregisters it when released normally; on an error or a
 * signal the ones left run last-in first-out, each bounded in time, so an
 * interrupted run leaves no server or data directory behind.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A cleanup that takes longer than this is abandoned (the process exits anyway). */
const CLEANUP_TIMEOUT_MS = 20_000;

interface Cleanup {
  readonly name: string;
  readonly run: () => Promise<void>;
}

const pending = new Map<number, Cleanup>();
let nextId = 0;
let running: Promise<void> | undefined;
let shuttingDown = false;

/** True once a signal asked the suite to stop: nothing new may start (it would outlive the cleanup). */
export function isShuttingDown(): boolean {
  return shuttingDown;
}

/** Registers `run`; call the returned function once the resource was released normally. */
export function registerCleanup(name: string, run: () => Promise<void>): () => void {
  const id = nextId++;
  pending.set(id, { name, run });
  return () => {
    pending.delete(id);
  };
}

/** Runs every registered cleanup, newest first; errors are reported, not thrown. */
export function runCleanups(): Promise<void> {
  running ??= (async () => {
    const entries = [...pending.entries()].reverse();
    pending.clear();
    for (const [, cleanup] of entries) {
      try {
        await withTimeout(cleanup.run(), CLEANUP_TIMEOUT_MS, cleanup.name);
      } catch (error) {
        process.stderr.write(`cleanup of ${cleanup.name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
    running = undefined;
  })();
  return running;
}

/** SIGINT (Ctrl-C) and SIGTERM stop the servers and remove the temporary files before exiting. */
export function exitCleanlyOnSignals(): void {
  const onSignal = (signal: NodeJS.Signals, code: number): void => {
    shuttingDown = true;
    process.stderr.write(`\n${signal}: stopping servers and removing temporary files\n`);
    void runCleanups().finally(() => process.exit(code));
  };
  process.once('SIGINT', () => onSignal('SIGINT', 130));
  process.once('SIGTERM', () => onSignal('SIGTERM', 143));
}

/** A fresh temporary directory, removed by cleanup unless removed earlier through the returned function. */
export async function temporaryDirectory(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  const unregister = registerCleanup(`temporary directory ${path}`, () => rm(path, { recursive: true, force: true }));
  return {
    path,
    remove: async () => {
      unregister();
      await rm(path, { recursive: true, force: true });
    },
  };
}

async function withTimeout(promise: Promise<void>, timeoutMs: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: gave up after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
