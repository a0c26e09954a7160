/**
 * Object names, and the pool of live keys the mixed workload works on.
 *
 * Objects are numbered. Prepared objects are 0..keyCount-1 and named
 * `<prefix><id, 8 digits>`, the same in every run, so a later run can use
 * them without preparing again. Objects written during a run get the ids
 * after those and a run tag in their name, so they are always new keys.
 */
import { randomBytes } from 'node:crypto';
import { assert } from '../util/assert.ts';

const ID_DIGITS = 8;

export class KeyNames {
  readonly prefix: string;
  /** Ids below this are prepared objects. */
  readonly preparedCount: number;
  readonly #runTag: string;

  constructor(prefix: string, preparedCount: number) {
    assert(Number.isSafeInteger(preparedCount) && preparedCount >= 0, 'keys: prepared count');
    this.prefix = prefix;
    this.preparedCount = preparedCount;
    this.#runTag = randomBytes(4).toString('hex');
  }

  name(id: number): string {
    assert(Number.isSafeInteger(id) && id >= 0, 'keys: id is a natural number');
    const digits = String(id).padStart(ID_DIGITS, '0');
    return id < this.preparedCount ? `${this.prefix}${digits}` : `${this.prefix}${this.#runTag}-${digits}`;
  }
}

/** How many random slots a delete looks at for a key nobody is using before it gives up. */
const DELETE_PROBES_MAX = 64;

/**
 * The live keys of a mixed run, bounded to `capacity`. A key is live from the
 * moment its PUT succeeded until a DELETE is chosen for it; reads and
 * overwrites pin it (`busy`) while in flight, and a DELETE only takes a key
 * nobody pins, which it removes before the request is sent. So on a correct
 * server no read ever misses and no delete races another request.
 */
export class LiveKeys {
  readonly capacity: number;
  readonly #ids: Float64Array;
  #size = 0;
  /** New keys whose PUT is in flight: they count against the capacity. */
  #adding = 0;
  /** In-flight users per pinned key; at most one entry per request in flight. */
  readonly #busy = new Map<number, number>();

  constructor(capacity: number, initialCount: number) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, 'live keys: capacity');
    assert(Number.isSafeInteger(initialCount) && initialCount >= 0 && initialCount <= capacity, 'live keys: initial count fits');
    this.capacity = capacity;
    this.#ids = new Float64Array(capacity);
    for (let id = 0; id < initialCount; id++) this.#ids[id] = id;
    this.#size = initialCount;
  }

  get size(): number {
    return this.#size;
  }

  /** Pins a random live key (for a GET, HEAD or overwrite); undefined when none is live. */
  pin(): number | undefined {
    if (this.#size === 0) return undefined;
    const id = this.#ids[Math.floor(Math.random() * this.#size)]!;
    this.#busy.set(id, (this.#busy.get(id) ?? 0) + 1);
    return id;
  }

  unpin(id: number): void {
    const users = this.#busy.get(id);
    assert(users !== undefined && users > 0, 'live keys: unpin of a key not pinned');
    if (users === 1) this.#busy.delete(id);
    else this.#busy.set(id, users - 1);
  }

  /** Takes a random live key nobody pins out of the pool, for a DELETE; undefined if none was found. */
  takeForDelete(): number | undefined {
    if (this.#size === 0) return undefined;
    const start = Math.floor(Math.random() * this.#size);
    const probes = Math.min(this.#size, DELETE_PROBES_MAX);
    for (let probe = 0; probe < probes; probe++) {
      const slot = (start + probe) % this.#size;
      const id = this.#ids[slot]!;
      if (this.#busy.has(id)) continue;
      this.#size--;
      this.#ids[slot] = this.#ids[this.#size]!;
      return id;
    }
    return undefined;
  }

  /** Reserves room for a new key; false when the pool is full (overwrite a live key instead). */
  reserveNew(): boolean {
    if (this.#size + this.#adding >= this.capacity) return false;
    this.#adding++;
    return true;
  }

  /** The PUT of a reserved new key finished: it becomes live if it succeeded. */
  settleNew(id: number, succeeded: boolean): void {
    assert(this.#adding > 0, 'live keys: settle without a reservation');
    this.#adding--;
    if (!succeeded) return;
    assert(this.#size < this.capacity, 'live keys: room was reserved');
    this.#ids[this.#size] = id;
    this.#size++;
  }

  /** Pinned keys (for tests and end-of-run checks: 0 once nothing is in flight). */
  get pinnedCount(): number {
    return this.#busy.size;
  }
}
