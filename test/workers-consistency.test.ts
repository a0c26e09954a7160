/**
 * Read-after-write across worker processes: every worker keeps the latest
 * versions of recently read keys in memory, so a write acknowledged by one
 * worker must empty the other's copy before that one answers again. Each
 * round overwrites (or deletes) keys the GETs of the round before made both
 * workers cache, then reads them back through fresh connections, which
 * node:cluster spreads over both workers.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { signedRequest, type RawResponse } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const BUCKET = 'consistency';
const ROUNDS = 25;
/** Keys hammered at once, each by its own writer/reader loop. */
const KEYS = 4;
/** GETs after each write: fresh connections, so both workers answer some. */
const READS_PER_WRITE = 4;

/** A request ID starts with a per-process prefix (see workers.test.ts). */
const processOf = (response: RawResponse): string => String(response.headers['x-amz-request-id']).slice(0, 6);

describe('read-after-write across worker processes', { timeout: 120_000 }, () => {
  let dataDir: string;
  let talus: RunningTalus;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-consistency-'));
    talus = await startTalus({
      dataDir,
      port: 0,
      address: '127.0.0.1',
      workers: 2,
      rootAccessKeyId: ACCESS_KEY_ID,
      rootSecretAccessKey: SECRET_ACCESS_KEY,
      logger: silentLogger,
    });
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${BUCKET}` })).status, 200);
  });

  after(async () => {
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a PUT or DELETE answered by one worker is what the other serves next', async () => {
    /** Reads served by another process than the write before them: the case this test is about. */
    let crossProcessReads = 0;
    /** The first failed assertion stops every loop, so none sends to a server being closed. */
    let failed = false;
    const hammer = async (key: string): Promise<void> => {
      for (let round = 0; round < ROUNDS && !failed; round++) {
        // Every fifth round deletes instead: the cached version must not outlive it either.
        const deleting = round % 5 === 4;
        const body = `${key} round ${round}`;
        const write = deleting
          ? await signedRequest(talus.url, { method: 'DELETE', path: `/${BUCKET}/${key}` })
          : await signedRequest(talus.url, { method: 'PUT', path: `/${BUCKET}/${key}`, body });
        assert.equal(write.status, deleting ? 204 : 200, `round ${round} write: ${write.body}`);
        for (let read = 0; read < READS_PER_WRITE; read++) {
          const method = read % 2 === 0 ? 'GET' : 'HEAD';
          const response = await signedRequest(talus.url, { method, path: `/${BUCKET}/${key}` });
          if (processOf(response) !== processOf(write)) crossProcessReads++;
          if (deleting) {
            assert.equal(response.status, 404, `${key} round ${round}: a ${method} after the DELETE found it`);
          } else {
            assert.equal(response.status, 200, `${key} round ${round}: ${method} answered ${response.status}`);
            assert.equal(response.headers['content-length'], String(Buffer.byteLength(body)), `${key} round ${round}: ${method} saw an older version`);
            if (method === 'GET') assert.equal(response.body, body, `${key} round ${round}: GET served an older version`);
          }
        }
      }
    };
    const loops = Array.from({ length: KEYS }, (_, index) => hammer(`key-${index}`).catch((error: unknown) => {
      failed = true;
      throw error;
    }));
    for (const outcome of await Promise.allSettled(loops)) if (outcome.status === 'rejected') throw outcome.reason;
    // Round-robin over fresh connections reaches both workers; a loaded machine may skew it, not to zero.
    assert.ok(crossProcessReads >= ROUNDS, `only ${crossProcessReads} reads were served by the other worker`);
  });
});
