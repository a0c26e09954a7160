/**
 * Loads @ronomon/reed-solomon, an optional dependency: it builds from C
 * source at install time (node-gyp), and an install where that failed must
 * still run, on the portable codec. The addon has no type declarations, so
 * its API is declared here and its shape checked once at load, which keeps
 * `any` from crossing into the codec.
 */
import { createRequire } from 'node:module';
import { DATA_SHARDS_MAX, PARITY_SHARDS_MAX } from './parameters.ts';

/** The addon's exports we use (binding.c of 6.0.0). */
export interface ReedSolomonBinding {
  readonly MAX_K: number;
  readonly MAX_M: number;
  /**
   * An encoding context for k + m: bytes [w, k, m] then the (m·w)×(k·w)
   * encoding bit matrix. Immutable; one context serves concurrent calls.
   */
  create(dataShards: number, parityShards: number): Uint8Array;
  /**
   * Computes the `targets` shards from the `sources` shards (bit i of either
   * mask is shard i; data shards are `buffer` cut into k equal parts, parity
   * shards `parity` cut into m). Runs on libuv's thread pool and calls `end`
   * with no argument when done. Throws synchronously on bad arguments
   * (sources < k, targets > m, shard length not a multiple of 8, ...).
   * Every shard that is not a source may be overwritten, not only targets.
   */
  encode(
    context: Uint8Array,
    sources: number,
    targets: number,
    buffer: Uint8Array,
    bufferOffset: number,
    bufferSize: number,
    parity: Uint8Array,
    parityOffset: number,
    paritySize: number,
    end: () => void,
  ): void;
}

export type NativeBindingLoad = { readonly binding: ReedSolomonBinding } | { readonly binding: null; readonly reason: string };

const MODULE_NAME = '@ronomon/reed-solomon';
let loaded: NativeBindingLoad | undefined;

/** The addon, or why not. Tried once per process: a failed build does not fix itself. */
export function loadNativeBinding(): NativeBindingLoad {
  loaded ??= tryLoad();
  return loaded;
}

function tryLoad(): NativeBindingLoad {
  let exports: unknown;
  try {
    exports = createRequire(import.meta.url)(MODULE_NAME);
  } catch (error) {
    return { binding: null, reason: `${MODULE_NAME} did not load: ${(error as Error).message.split('\n')[0]}` };
  }
  if (!isBinding(exports)) return { binding: null, reason: `${MODULE_NAME} does not export create() and encode()` };
  // Other limits mean another version, whose parameter table (and so shard format) may differ.
  if (exports.MAX_K !== DATA_SHARDS_MAX || exports.MAX_M !== PARITY_SHARDS_MAX) {
    return { binding: null, reason: `${MODULE_NAME} limits ${exports.MAX_K}+${exports.MAX_M}, expected ${DATA_SHARDS_MAX}+${PARITY_SHARDS_MAX}` };
  }
  return { binding: exports };
}

function isBinding(value: unknown): value is ReedSolomonBinding {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return (
    typeof candidate['create'] === 'function' &&
    typeof candidate['encode'] === 'function' &&
    typeof candidate['MAX_K'] === 'number' &&
    typeof candidate['MAX_M'] === 'number'
  );
}
