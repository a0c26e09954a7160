/**
 * bin/talus.js serves the compiled dist/ only while src/ has the fingerprint
 * recorded at build time: any change to a source — newer, or laid down with
 * an older modification time — makes dist/ stale; test files do not count.
 */
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sourceFingerprint } from '../bin/source-fingerprint.js';

test('the fingerprint changes with any source file and ignores tests', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-fingerprint-'));
  try {
    await mkdir(join(root, 'a', 'b'), { recursive: true });
    await writeFile(join(root, 'a', 'one.ts'), 'export const one = 1;\n');
    await writeFile(join(root, 'a', 'b', 'two.ts'), 'export const two = 2;\n');
    await writeFile(join(root, 'a', 'one.test.ts'), 'test\n');
    const past = new Date('2020-01-01T00:00:00Z');
    await utimes(join(root, 'a', 'one.ts'), past, past);
    const built = sourceFingerprint(root);
    assert.equal(sourceFingerprint(root), built, 'stable while nothing changes');

    await writeFile(join(root, 'a', 'one.test.ts'), 'another test\n');
    assert.equal(sourceFingerprint(root), built, 'tests are not compiled into dist/');

    // Older than before: "newer than the build" would miss this one.
    const older = new Date('2019-06-01T00:00:00Z');
    await utimes(join(root, 'a', 'one.ts'), older, older);
    assert.notEqual(sourceFingerprint(root), built);
    await utimes(join(root, 'a', 'one.ts'), past, past);
    assert.equal(sourceFingerprint(root), built);

    await writeFile(join(root, 'a', 'b', 'three.ts'), 'export const three = 3;\n');
    assert.notEqual(sourceFingerprint(root), built, 'a new source');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
