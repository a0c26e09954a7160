/**
 * ObjectStorage in memory and in a directory: the conformance suite against
 * both.
 */
import { after, before } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage } from '../src/storage/file-storage.ts';
import { MemoryStorage } from '../src/storage/memory-storage.ts';
import { runConformance } from './helpers/storage-conformance.ts';

let root: string;
let files: FileStorage;
const memory = new MemoryStorage();

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-storage-'));
  files = new FileStorage(root);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

runConformance({ name: 'memory', storage: () => memory });
runConformance({ name: 'filesystem', storage: () => files });
