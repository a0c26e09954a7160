/**
 * The codec on @ronomon/reed-solomon (9–13 GB/s per core on 4+2 here, about
 * ten times the portable codec). Each call is one work item on libuv's thread
 * pool, so the event loop stays free while a stripe is coded; that pool (4
 * threads unless UV_THREADPOOL_SIZE says otherwise) is the one fs and dns
 * lookups use too, so the striping layer must bound its stripes in flight.
 *
 * The addon reads data shards as one region and parity shards as another.
 * Shards laid end to end (`allocateShards`) are passed as they are; any other
 * shards are staged through a temporary region, costing a copy in and out.
 */
import { assert } from '../util/assert.ts';
import type { ErasureCodec } from './codec.ts';
import { ErasureCodecError } from './errors.ts';
import { buildCodingMatrices } from './matrix.ts';
import type { ReedSolomonBinding } from './native-binding.ts';
import { isContiguous, missingShards, validateDisjoint, validateGeometry, validateShards } from './shards.ts';

/** A run of shards as the addon wants it: one view over all of them, maybe a staged copy. */
interface Region {
  readonly bytes: Uint8Array;
  /** True when `bytes` is a copy: results must be copied back to the caller's shards. */
  readonly staged: boolean;
}

export class NativeErasureCodec implements ErasureCodec {
  readonly dataShards: number;
  readonly parityShards: number;
  readonly implementation = 'native' as const;
  readonly #binding: ReedSolomonBinding;
  readonly #context: Uint8Array;

  constructor(binding: ReedSolomonBinding, dataShards: number, parityShards: number) {
    validateGeometry(dataShards, parityShards);
    this.dataShards = dataShards;
    this.parityShards = parityShards;
    this.#binding = binding;
    this.#context = binding.create(dataShards, parityShards);
    assertSameCode(this.#context, dataShards, parityShards);
  }

  async encode(data: readonly Uint8Array[], parity: Uint8Array[]): Promise<void> {
    const shardBytes = validateShards(data, this.dataShards, 'data');
    validateShards(parity, this.parityShards, 'parity');
    if (parity[0]!.byteLength !== shardBytes) {
      throw new ErasureCodecError('ErasureShardsInvalid', `parity shards have ${parity[0]!.byteLength} bytes, data shards ${shardBytes}`);
    }
    validateDisjoint([...data, ...parity]);
    const sources = (1 << this.dataShards) - 1;
    const targets = ((1 << this.parityShards) - 1) << this.dataShards;
    const dataRegion = regionOf(data, true);
    const parityRegion = regionOf(parity, false);
    await this.#run(sources, targets, dataRegion.bytes, parityRegion.bytes);
    if (parityRegion.staged) copyOut(parityRegion.bytes, parity, parity.map((_, i) => i));
  }

  async reconstruct(shards: Uint8Array[], present: readonly boolean[]): Promise<void> {
    validateShards(shards, this.dataShards + this.parityShards, 'stripe');
    validateDisjoint(shards);
    const missing = missingShards(present, this.dataShards, this.parityShards);
    if (missing.length === 0) return; // the addon rejects an empty target set
    let sources = 0;
    let targets = 0;
    present.forEach((flag, i) => (flag ? (sources |= 1 << i) : (targets |= 1 << i)));
    const data = shards.slice(0, this.dataShards);
    const parity = shards.slice(this.dataShards);
    const dataRegion = regionOf(data, true);
    const parityRegion = regionOf(parity, true);
    await this.#run(sources, targets, dataRegion.bytes, parityRegion.bytes);
    const missingData = missing.filter((i) => i < this.dataShards);
    const missingParity = missing.filter((i) => i >= this.dataShards).map((i) => i - this.dataShards);
    if (dataRegion.staged) copyOut(dataRegion.bytes, data, missingData);
    if (parityRegion.staged) copyOut(parityRegion.bytes, parity, missingParity);
  }

  #run(sources: number, targets: number, data: Uint8Array, parity: Uint8Array): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        this.#binding.encode(this.#context, sources, targets, data, 0, data.byteLength, parity, 0, parity.byteLength, resolve);
      } catch (error) {
        // Arguments were validated above, so a synchronous throw is a bug here or a changed addon.
        reject(error);
      }
    });
  }
}

/**
 * The addon's encoding bit matrix must be the one the portable codec builds,
 * or the two would write different shard formats: checked once per codec.
 */
function assertSameCode(context: Uint8Array, dataShards: number, parityShards: number): void {
  const { field, encoding } = buildCodingMatrices(dataShards, parityShards);
  assert(context.length === 3 + encoding.length, 'native context has the expected size');
  assert(context[0] === field.width, `native field width ${context[0]} != ${field.width}`);
  assert(context[1] === dataShards && context[2] === parityShards, 'native context is for this geometry');
  const bits = context.subarray(3);
  assert(bits.every((bit, i) => bit === encoding[i]), `native bit matrix differs from the portable one for ${dataShards}+${parityShards}`);
}

function regionOf(shards: readonly Uint8Array[], copyIn: boolean): Region {
  const first = shards[0]!;
  const regionBytes = shards.length * first.byteLength;
  if (isContiguous(shards)) return { bytes: new Uint8Array(first.buffer, first.byteOffset, regionBytes), staged: false };
  // Written whole by the copies or by the addon, so no need to zero it.
  const bytes = Buffer.allocUnsafeSlow(regionBytes);
  if (copyIn) shards.forEach((shard, i) => bytes.set(shard, i * first.byteLength));
  return { bytes, staged: true };
}

function copyOut(region: Uint8Array, shards: readonly Uint8Array[], indices: readonly number[]): void {
  for (const i of indices) {
    const shard = shards[i]!;
    shard.set(region.subarray(i * shard.byteLength, (i + 1) * shard.byteLength));
  }
}
