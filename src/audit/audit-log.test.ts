import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AUDIT_DIRECTORY, AUDIT_FILE, AUDIT_FILE_BYTES_MAX, AuditLog, REFUSALS_FILE } from './audit-log.ts';

test('the audit log rotates at its size limit and queries newest first across files', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-audit-'));
  try {
    const log = await AuditLog.open(dataDir);
    const filler = 'x'.repeat(900);
    let written = 0;
    // Just past one file's limit; flushed now and then so the buffer never drops entries.
    while (written * 1000 < AUDIT_FILE_BYTES_MAX + 200_000) {
      log.record({ kind: 'admin', requestId: `r${written}`, operation: written % 2 === 0 ? 'Even' : 'Odd', principal: filler.slice(0, 1) + written, status: 200, code: filler });
      written++;
      if (written % 1000 === 0) await log.flush();
    }
    await log.flush();
    const files = (await readdir(join(dataDir, AUDIT_DIRECTORY))).sort();
    assert.deepEqual(files, [AUDIT_FILE, `${AUDIT_FILE}.1`]);
    assert.ok((await stat(join(dataDir, AUDIT_DIRECTORY, `${AUDIT_FILE}.1`))).size >= AUDIT_FILE_BYTES_MAX);
    const newest = await log.query({ limit: 3 });
    assert.deepEqual(newest.map((entry) => entry.requestId), [`r${written - 1}`, `r${written - 2}`, `r${written - 3}`]);
    // A query that needs the rotated file too.
    const odd = await log.query({ operation: 'Odd', limit: 1000 });
    assert.equal(odd.length, 1000);
    assert.ok(odd.every((entry) => entry.operation === 'Odd'));
    const all = await log.query({ limit: 1000, principal: 'x0' });
    assert.deepEqual(all.map((entry) => entry.requestId), ['r0'], 'the oldest entry, in the rotated file');
    assert.ok(newest.every((entry) => entry.droppedBefore === undefined), 'nothing dropped');
    await log.close();
    // Reopened, it appends to the current file.
    const reopened = await AuditLog.open(dataDir);
    reopened.record({ kind: 's3-denied', requestId: 'after', operation: 'GetObject', principal: 'anonymous', status: 403, code: 'AccessDenied' });
    assert.deepEqual((await reopened.query({ limit: 1 })).map((entry) => entry.requestId), ['after']);
    await reopened.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a flood of refused requests rotates only the refusals: what authenticated callers did stays', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-audit-flood-'));
  try {
    const log = await AuditLog.open(dataDir);
    log.record({ kind: 'admin', requestId: 'the-call', operation: 'CreateUser', principal: 'root', status: 200 });
    const filler = 'y'.repeat(900);
    for (let written = 0; written * 1000 < AUDIT_FILE_BYTES_MAX * 2 + 200_000; written++) {
      log.record({ kind: 's3-denied', requestId: `d${written}`, operation: 'GetObject', principal: 'anonymous', status: 403, code: filler });
      if (written % 1000 === 999) await log.flush();
    }
    await log.flush();
    const files = (await readdir(join(dataDir, AUDIT_DIRECTORY))).sort();
    assert.deepEqual(files, [AUDIT_FILE, REFUSALS_FILE, `${REFUSALS_FILE}.1`, `${REFUSALS_FILE}.2`]);
    assert.deepEqual((await log.query({ operation: 'CreateUser' })).map((entry) => entry.requestId), ['the-call']);
    // Merged newest first across both series.
    const newest = await log.query({ limit: 2 });
    assert.equal(newest[0]!.kind, 's3-denied');
    assert.ok(newest[0]!.timeMs >= newest[1]!.timeMs);
    await log.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
