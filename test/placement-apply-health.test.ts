/**
 * How run-time backend changes reach a process's open placement:
 * - applyConfig applies every item it can, and names the ones that failed
 *   (a worker no longer stops at the first backend that cannot be opened);
 * - after a backend is replaced (UpdateBackend), outcomes of probes and
 *   requests still running on the retired connection do not touch the new
 *   one's health.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Backend } from '../src/backend/backend.ts';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { FsBlobStore } from '../src/blob/fs/fs-blob-store.ts';
import { parseConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { BackendHealth } from '../src/placement/backend-health.ts';
import { IDENTITY_PREFIX, claimBackend } from '../src/placement/backend-identity.ts';
import { Healer, isShardKey } from '../src/placement/healer.ts';
import { PlacedBlobStore } from '../src/placement/placed-blob-store.ts';
import { newBlobId } from '../src/util/ids.ts';
import { openPlacement } from '../src/placement/open-placement.ts';
import { silentLogger } from '../src/util/logger.ts';

test('applyConfig applies every item it can and names those it could not', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-apply-'));
  const meta = new SqliteMetadataStore(':memory:');
  try {
    for (const disk of ['base', 'good']) await mkdir(join(root, disk));
    await writeFile(join(root, 'a-file'), 'a directory backend cannot live under a file');
    const base = `[backends.base]\ntype = "directory"\npath = "${join(root, 'base')}"\n[placements.basic]\ntype = "single"\nbackend = "base"\n`;
    const placement = await openPlacement(parseConfig(base, { source: 'test', baseDirectory: root }), await FsBlobStore.open(join(root, 'local')), meta, silentLogger);
    const target = parseConfig(
      `${base}[backends.bad]\ntype = "directory"\npath = "${join(root, 'a-file', 'shards')}"\n[backends.good]\ntype = "directory"\npath = "${join(root, 'good')}"\n` +
        '[placements.over-bad]\ntype = "single"\nbackend = "bad"\n[placements.over-good]\ntype = "single"\nbackend = "good"\n[buckets]\nphotos = "over-good"\n',
      { source: 'test', baseDirectory: root },
    );
    await assert.rejects(placement.applyConfig(target), (error: Error) => {
      assert.match(error.message, /backend bad: /);
      assert.match(error.message, /placement over-bad: /);
      assert.doesNotMatch(error.message, /good/);
      return true;
    });
    // Past the failure, the rest was applied.
    assert.deepEqual(placement.store.backends().map((backend) => backend.name).sort(), ['base', 'good']);
    assert.ok(placement.store.hasPlacement('over-good'));
    assert.equal(placement.store.bucketPlacementName('photos'), 'over-good');
    await placement.store.close();
  } finally {
    await meta.close();
    await rm(root, { recursive: true, force: true });
  }
});

/** A backend whose stat waits for `release`, then fails: a probe on an endpoint an UpdateBackend retired. */
class RetiredBackend extends MemoryBackend {
  readonly #released: Promise<void>;
  constructor(name: string, released: Promise<void>) {
    super(name);
    this.#released = released;
  }
  override async stat(): Promise<number | undefined> {
    await this.#released;
    throw new Error('the old endpoint is gone');
  }
}

test('after a backend is replaced, the retired connection\'s late outcomes do not change the new one\'s health', async () => {
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const retired = new RetiredBackend('x', released);
  const backends = new Map<string, Backend>([['x', retired]]);
  const health = new BackendHealth(backends, { deadlineMinMs: 5_000, deadlineMaxMs: 10_000 });
  const lateProbe = health.probe('x'); // still running on the old connection

  const replacement = new MemoryBackend('x');
  backends.set('x', replacement);
  health.reset('x');
  await health.probe('x');
  assert.equal(health.state('x'), 'up');

  release();
  await lateProbe;
  health.reportFailure('x', new Error('a late request on the old connection'), retired);
  assert.equal(health.state('x'), 'up', 'the old connection\'s failures are not the new one\'s');
  assert.equal(health.snapshot()[0]!.errors, 0);
  health.reportFailure('x', new Error('the new one failed'), replacement);
  assert.equal(health.state('x'), 'down');
});

test('orphan reclaim deletes unknown shards only on a backend carrying this store\'s identity marker', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-identity-'));
  const meta = new SqliteMetadataStore(':memory:');
  try {
    const backends = new Map<string, Backend>(['ours', 'foreign', 'unmarked'].map((name) => [name, new MemoryBackend(name)]));
    const store = new PlacedBlobStore({
      local: await FsBlobStore.open(join(root, 'local')),
      backends,
      config: { backends: [], placements: [], defaultPlacement: 'local', buckets: new Map() },
      health: new BackendHealth(backends),
      repairs: { recordRepairs: async () => undefined },
    });
    assert.deepEqual(await claimBackend(meta, backends.get('ours')!, isShardKey), { ours: true }, 'an empty backend is claimed');
    await put(backends.get('foreign')!, `${IDENTITY_PREFIX}0b7c9a52-2d7e-4f0e-9b43-5f1c2b7d1e11`, '{}');
    const orphan = `${newBlobId()}.0`;
    for (const backend of backends.values()) await put(backend, orphan, 'a shard nobody here knows');

    const removed = await new Healer(meta, store).reclaimOrphans(Date.now() + 60_000);
    assert.equal(removed, 1);
    assert.equal(await backends.get('ours')!.stat(orphan), undefined, 'this store\'s debris is reclaimed');
    assert.notEqual(await backends.get('foreign')!.stat(orphan), undefined, 'another store\'s shards are left alone');
    assert.notEqual(await backends.get('unmarked')!.stat(orphan), undefined, 'shards no marker vouches for are left alone');
    await store.close();
  } finally {
    await meta.close();
    await rm(root, { recursive: true, force: true });
  }
});

async function put(backend: Backend, key: string, text: string): Promise<void> {
  const body = Buffer.from(text);
  const writer = backend.create(key, body.length);
  await writer.write(body);
  await writer.commit();
}
