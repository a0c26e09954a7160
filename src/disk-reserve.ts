/**
 * A full disk must not take deletes down with it: a DELETE commits to the
 * SQLite WAL, which needs free space exactly when there is none, and a
 * client that cannot delete cannot free space. So the data directory keeps
 * a reserve: a preallocated ballast file (`talus.reserve`). When a write
 * meets a full disk, the ballast is released and the server goes
 * "storage-full": writes that add data are refused up front with 503
 * SlowDown (StorageFullError), while deletes, reads and the purger go on,
 * with the released space for their metadata commits. Once enough space is
 * free again (deletes purged, the operator made room) the ballast is
 * written back and writes resume, without a restart.
 *
 * The ballast is released in two halves: a server that meets a full disk
 * releases the first (for deletes' metadata commits), a start-up on a full
 * disk the rest, so a restart while the disk is full has room for what
 * start-up writes (the lock, recovering the WAL) and serves reads and
 * deletes. A second restart while still full finds no ballast left and
 * depends on start-up writing nothing new.
 */
import { constants } from 'node:fs';
import { open, statfs, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageFullError, isDiskFull } from './util/s3-error.ts';
import type { Logger } from './util/logger.ts';

/**
 * The ballast: a fiftieth of the file system, at least 2 MiB, at most 16
 * MiB. A delete commits 3-5 WAL pages (12-20 KiB), and the checkpointer
 * lets the WAL start over every 100 ms: 16 MiB is about a thousand deletes
 * between two checkpoints, and a small file system does not give a fiftieth
 * of itself away.
 */
const RESERVE_SHARE = 50;
const RESERVE_BYTES_MIN = 2 * 1024 * 1024;
const RESERVE_BYTES_MAX = 16 * 1024 * 1024;
/** How often a storage-full server looks whether space came back. */
const RECOVERY_CHECK_MS = 1_000;
const WRITE_CHUNK_BYTES = 1024 * 1024;

export class DiskReserve {
  readonly #path: string;
  readonly #dataDir: string;
  readonly #logger: Logger;
  #bytes = RESERVE_BYTES_MIN;
  #full = false;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;
  /** Writing the ballast at start-up happens in the background: start-up does not wait for it. */
  #filling: Promise<void> = Promise.resolve();

  private constructor(dataDir: string, logger: Logger) {
    this.#dataDir = dataDir;
    this.#path = join(dataDir, 'talus.reserve');
    this.#logger = logger;
  }

  /**
   * Releases the ballast at once if the disk is full already; otherwise
   * writes it if missing (`fill`; worker processes, which share the owner's
   * ballast, do not). Never fails for lack of space.
   */
  static async open(dataDir: string, logger: Logger, options: { fill?: boolean } = {}): Promise<DiskReserve> {
    const reserve = new DiskReserve(dataDir, logger);
    const space = await statfs(dataDir);
    reserve.#bytes = Math.min(RESERVE_BYTES_MAX, Math.max(RESERVE_BYTES_MIN, Math.floor((space.blocks * space.bsize) / RESERVE_SHARE)));
    if (space.bavail * space.bsize < reserve.#bytes) {
      await reserve.#enterFull('the disk is full at start-up', 0);
    } else if (options.fill ?? true) {
      reserve.#filling = reserve.#fill().then(
        async (filled) => {
          if (!filled) await reserve.#enterFull('the disk filled while the reserve was written', 0);
        },
        (error: unknown) => logger.warn('could not write the disk reserve', { error: String(error), dataDir }),
      );
    }
    return reserve;
  }

  /** The error for writes that would add data, while the disk is full; undefined otherwise. */
  refusal(): StorageFullError | undefined {
    return this.#full ? new StorageFullError('writes are refused until space is freed; deletes work') : undefined;
  }

  /** Tells the reserve a write failed; a full disk releases the ballast. */
  noteError(error: unknown): void {
    if (isDiskFull(error) && !this.#full) void this.#enterFull(String((error as Error).message ?? error), Math.floor(this.#bytes / 2));
  }

  /** Refuses writes that add data, and shrinks the ballast to `keepBytes` (the other half is for a restart). */
  async #enterFull(reason: string, keepBytes: number): Promise<void> {
    if (this.#full) return;
    this.#full = true;
    this.#logger.error('the disk is full: writes are refused (503 SlowDown) until space is freed; deletes and reads go on', { reason, dataDir: this.#dataDir });
    if (keepBytes === 0) await unlink(this.#path).catch(() => undefined);
    else await truncate(this.#path, keepBytes).catch(() => undefined);
    this.#timer = setInterval(() => void this.#checkRecovered(), RECOVERY_CHECK_MS);
    this.#timer.unref();
  }

  async #checkRecovered(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      const space = await statfs(this.#dataDir);
      // Room for the ballast and as much again for writes.
      if (space.bavail * space.bsize < 2 * this.#bytes) return;
      if (!(await this.#fill())) return;
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#full = false;
      this.#logger.info('space is free again: writes resume', { dataDir: this.#dataDir });
    } catch (error) {
      this.#logger.warn('could not check free space', { error: String(error) });
    } finally {
      this.#checking = false;
    }
  }

  /**
   * Writes the ballast (zeros, really allocated: not a sparse file); false
   * if the disk filled meanwhile. No fsync: file systems reserve the blocks
   * when the write is accepted (delayed allocation included), and a ballast
   * lost in a crash is written again at the next start-up.
   */
  async #fill(): Promise<boolean> {
    // Positional writes up to the size, never appends: processes sharing the
    // ballast (--workers) that write it at once write the same bytes.
    const handle = await open(this.#path, constants.O_RDWR | constants.O_CREAT);
    try {
      const { size } = await handle.stat();
      const zeros = Buffer.alloc(WRITE_CHUNK_BYTES);
      for (let at = size; at < this.#bytes; at += WRITE_CHUNK_BYTES) {
        await handle.write(zeros, 0, Math.min(WRITE_CHUNK_BYTES, this.#bytes - at), at);
      }
      return true;
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      await handle.close();
      await unlink(this.#path).catch(() => undefined);
      return false;
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** Stops watching for space; resolves once a ballast being written is written. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#filling;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
