/**
 * The codec in plain TypeScript, for installs where the native addon did not
 * build. It writes byte for byte the parity of @ronomon/reed-solomon (same
 * parameters, same bit matrices, same chunk layout; see `matrix.ts`), so a
 * stripe written by either implementation is read and repaired by the other.
 *
 * All work is synchronous on the calling thread: a 1 MiB stripe holds the
 * event loop ~1.1 ms on 4+2 and ~3.3 ms on 8+4 (bench/erasure.bench.ts), and
 * the first rebuild of a new loss pattern adds its plan: ~0.5 ms at 8+4,
 * ~15 ms at 24+6. The methods are async only to share the interface with the
 * native codec, which works on libuv's thread pool.
 */
import { assert } from '../util/assert.ts';
import type { ErasureCodec } from './codec.ts';
import { ErasureCodecError } from './errors.ts';
import { buildCodingMatrices, buildDecodingMatrix } from './matrix.ts';
import { missingShards, validateDisjoint, validateGeometry, validateShards } from './shards.ts';
import { chunkBytesFor, concatPlans, planXors, runXorPlan, type XorPlan, type XorRow } from './xor-plan.ts';

/**
 * Rebuild plans kept per codec, one per pattern of present shards. A stripe
 * whose disks are down repeats its pattern for every stripe of every object
 * on them, so a few entries catch nearly all calls; C(30, 6) patterns exist
 * at 24+6, hence the bound. A plan holds at most m·w steps of k·w + 1 terms
 * (≤ 74 KiB at 24+6), so the cache stays under ~2.5 MiB at the largest k.
 */
export const REBUILD_PLAN_CACHE_ENTRIES_MAX = 32;

export class PortableErasureCodec implements ErasureCodec {
  readonly dataShards: number;
  readonly parityShards: number;
  readonly implementation = 'portable' as const;
  readonly #width: number;
  readonly #encoding: Uint8Array;
  readonly #encodePlan: XorPlan;
  /** Keyed by the present shards' bit mask; Map order is least recently used first. */
  readonly #rebuildPlans = new Map<number, XorPlan>();

  constructor(dataShards: number, parityShards: number) {
    validateGeometry(dataShards, parityShards);
    this.dataShards = dataShards;
    this.parityShards = parityShards;
    const matrices = buildCodingMatrices(dataShards, parityShards);
    this.#width = matrices.field.width;
    this.#encoding = matrices.encoding;
    const allParity = Array.from({ length: parityShards }, (_, r) => dataShards + r);
    this.#encodePlan = this.#parityPlan(allParity);
  }

  async encode(data: readonly Uint8Array[], parity: Uint8Array[]): Promise<void> {
    const shardBytes = validateShards(data, this.dataShards, 'data');
    validateShards(parity, this.parityShards, 'parity');
    if (parity[0]!.byteLength !== shardBytes) {
      throw new ErasureCodecError('ErasureShardsInvalid', `parity shards have ${parity[0]!.byteLength} bytes, data shards ${shardBytes}`);
    }
    const shards = [...data, ...parity];
    validateDisjoint(shards);
    this.#run(this.#encodePlan, shards, shardBytes);
  }

  async reconstruct(shards: Uint8Array[], present: readonly boolean[]): Promise<void> {
    const shardBytes = validateShards(shards, this.dataShards + this.parityShards, 'stripe');
    validateDisjoint(shards);
    const missing = missingShards(present, this.dataShards, this.parityShards);
    if (missing.length === 0) return;
    this.#run(this.#rebuildPlan(present, missing), shards, shardBytes);
  }

  /** Rebuild plans cached (for tests of the bound). */
  get rebuildPlanCacheSize(): number {
    return this.#rebuildPlans.size;
  }

  #run(plan: XorPlan, shards: readonly Uint8Array[], shardBytes: number): void {
    runXorPlan(plan, shards, shardBytes, chunkBytesFor(this.#width, this.dataShards, shardBytes));
  }

  #rebuildPlan(present: readonly boolean[], missing: readonly number[]): XorPlan {
    const key = present.reduce((mask, flag, index) => (flag ? mask | (1 << index) : mask), 0);
    const cached = this.#rebuildPlans.get(key);
    if (cached !== undefined) {
      this.#rebuildPlans.delete(key);
      this.#rebuildPlans.set(key, cached);
      return cached;
    }
    const plan = this.#buildRebuildPlan(present, missing);
    if (this.#rebuildPlans.size >= REBUILD_PLAN_CACHE_ENTRIES_MAX) this.#rebuildPlans.delete(this.#rebuildPlans.keys().next().value!);
    this.#rebuildPlans.set(key, plan);
    return plan;
  }

  /**
   * Missing data from the first k present shards (the sources the native
   * library picks) through the inverted matrix; then missing parity from the
   * data, which is complete by then within each block.
   */
  #buildRebuildPlan(present: readonly boolean[], missing: readonly number[]): XorPlan {
    const missingData = missing.filter((index) => index < this.dataShards);
    const missingParity = missing.filter((index) => index >= this.dataShards);
    const parityPlan = this.#parityPlan(missingParity);
    if (missingData.length === 0) return parityPlan;
    const sources: number[] = [];
    for (let i = 0; i < present.length && sources.length < this.dataShards; i++) if (present[i]) sources.push(i);
    assert(sources.length === this.dataShards, 'missingShards() guaranteed k present shards');
    const inverse = buildDecodingMatrix(this.#encoding, this.dataShards, this.#width, sources);
    const dataPlan = planXors(this.#rowsOf(inverse, missingData, 0), sources, this.#width);
    return concatPlans(dataPlan, parityPlan);
  }

  #parityPlan(parityShards: readonly number[]): XorPlan {
    const dataIndices = Array.from({ length: this.dataShards }, (_, i) => i);
    return planXors(this.#rowsOf(this.#encoding, parityShards, this.dataShards), dataIndices, this.#width);
  }

  /** The w bit rows producing each target shard; target t is block t - firstTarget of `matrix`. */
  #rowsOf(matrix: Uint8Array, targets: readonly number[], firstTarget: number): XorRow[] {
    const columns = this.dataShards * this.#width;
    return targets.flatMap((target) =>
      Array.from({ length: this.#width }, (_, chunk) => {
        const row = (target - firstTarget) * this.#width + chunk;
        return { target, chunk, bits: matrix.subarray(row * columns, (row + 1) * columns) };
      }),
    );
  }
}
